// Fused pass of one training step over one chunk of points: for each point the forward pass,
// the squared error and the gradient contribution (backpropagation), summed per thread and then
// per workgroup by a tree in shared memory. Each point is read once. The network's shape is
// written into this text by downhill before compiling ({{...}} markers), so every loop has
// constant bounds.

struct Chunk {
    points: u32,       // points in this chunk
    stride: u32,       // distance between the chunk's columns in `data`
    partial_row: u32,  // first row of `partials` this dispatch writes
    rows: u32,         // rows of `partials` over all chunks
}

// The chunk's columns one after another (inputs, then targets), `stride` values apart.
@group(0) @binding(0) var<storage, read> data: array<f32>;
// The network's parameters in downhill's flat layout.
@group(0) @binding(1) var<storage, read> params: array<f32>;
// One column per workgroup, `chunk.rows` values apart: the gradient of the SSE (P values),
// then the SSE. Value k of every workgroup is one run of the buffer, so the reduce pass reads
// it coalesced.
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> chunk: Chunk;

struct State {
    applied: u32,
    stop: u32,        // 0 running; once a run stopped (flat, diverged), its later steps skip
    stop_loss: f32,   // the whole pass instead of reading every point for nothing
    stop_norm: f32,
}
// The run's state, as the update pass keeps it.
@group(0) @binding(4) var<storage, read> state: State;

const WG: u32 = {{WG}}u;
const P: u32 = {{P}}u;
const PP: u32 = {{P}}u + 1u;
const NODES: u32 = {{NODES}}u;
const SUM_WG: u32 = WG;

var<workgroup> w: array<f32, P>;
var<workgroup> stopped: u32;

{{WORKGROUP_SUM}}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    if (lid.x == 0u) {
        stopped = state.stop;
    }
    if (workgroupUniformLoad(&stopped) != 0u) {
        return;
    }
    // The weights are read by every point: keep them in shared memory (and, for small
    // networks, in registers: downhill writes `let w_k = w[k];` lines below).
    for (var k = lid.x; k < P; k += WG) {
        w[k] = params[k];
    }
    workgroupBarrier();
{{WEIGHTS}}
    var g: array<f32, PP>;
    var act: array<f32, NODES>;
    var delta: array<f32, NODES>;
    let threads = groups.x * WG;
    // A grid-stride loop: threads past the last point do nothing (the bounds guard).
    for (var p = gid.x; p < chunk.points; p += threads) {
{{BODY}}
    }

    for (var k = 0u; k < PP; k++) {
        let total = workgroup_sum(g[k], lid.x, {{SUBGROUP_IDS}});
        if (lid.x == 0u) {
            partials[k * chunk.rows + chunk.partial_row + wid.x] = total;
        }
    }
}
