// The SSE of many parameter vectors over one chunk of points, for the loss landscape: the
// workgroup at (x, y) takes parameter vector y and every (groups.x)-th slice of the points,
// so one dispatch evaluates a whole batch of grid points. Each workgroup writes one partial
// sum (its SSE, summed over the workgroup); the host adds the partials in f64. The network's shape is
// written in by downhill ({{...}} markers), as for the fused kernel.

struct Chunk {
    points: u32,      // points in this chunk
    stride: u32,      // distance between the chunk's columns in `data`
    partial_row: u32,  // these two are not used by this kernel (one Rust mirror for every `Chunk`)
    rows: u32,
}

@group(0) @binding(0) var<storage, read> data: array<f32>;
// The batch's parameter vectors, P values each, one after another.
@group(0) @binding(1) var<storage, read> sets: array<f32>;
// One value per workgroup: row y (the vector), column x (the slice of points).
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> chunk: Chunk;

const WG: u32 = {{WG}}u;
const P: u32 = {{P}}u;
const NODES: u32 = {{NODES}}u;

const SUM_WG: u32 = WG;

var<workgroup> w: array<f32, P>;

{{WORKGROUP_SUM}}

@compute @workgroup_size(WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    for (var k = lid.x; k < P; k += WG) {
        w[k] = sets[wid.y * P + k];
    }
    workgroupBarrier();
{{WEIGHTS}}
    var act: array<f32, NODES>;
    var sse = 0.0;
    let threads = groups.x * WG;
    for (var p = wid.x * WG + lid.x; p < chunk.points; p += threads) {
{{BODY}}
    }
    let total = workgroup_sum(sse, lid.x, {{SUBGROUP_IDS}});
    if (lid.x == 0u) {
        partials[wid.y * groups.x + wid.x] = total;
    }
}
