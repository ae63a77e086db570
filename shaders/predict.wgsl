// Forward pass only: one prediction per point, for `eval` and `predict`.

struct Chunk {
    points: u32,       // points in this chunk
    stride: u32,       // distance between the chunk's columns in `data` and in `out`
    partial_row: u32,  // these two are not used by this kernel (one Rust mirror for every `Chunk`)
    rows: u32,
}

// The chunk's input columns one after another, `stride` values apart.
@group(0) @binding(0) var<storage, read> data: array<f32>;
// The network's parameters in downhill's flat layout.
@group(0) @binding(1) var<storage, read> params: array<f32>;
// The predictions, one column per output, `stride` values apart.
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> chunk: Chunk;

const WG: u32 = {{WG}}u;
const P: u32 = {{P}}u;
const NODES: u32 = {{NODES}}u;

var<workgroup> w: array<f32, P>;

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    for (var k = lid.x; k < P; k += WG) {
        w[k] = params[k];
    }
    workgroupBarrier();
{{WEIGHTS}}    var act: array<f32, NODES>;
    let threads = groups.x * WG;
    for (var p = gid.x; p < chunk.points; p += threads) {
{{BODY}}
    }
}
