// Fused pass of one training step over one chunk of points: for each point the forward pass,
// the squared error and the gradient contribution (backpropagation), summed per thread and then
// per workgroup. Each point is read once for up to RB runs (a sweep's): one slot per run, each
// with its weights and sums; rows of workgroups (wid.y) take further slots of runs. The
// network's shape is written into this text by downhill before compiling ({{...}} markers),
// so every loop has constant bounds.

struct Chunk {
    points: u32,       // points in this chunk
    stride: u32,       // distance between the chunk's columns in `data`
    partial_row: u32,  // first row of `partials` this dispatch writes
    rows: u32,         // rows of `partials` over all chunks
}

// The chunk's columns one after another (inputs, then targets), `stride` values apart.
@group(0) @binding(0) var<storage, read> data: array<f32>;
// Every run's parameters in downhill's flat layout, run after run (P values each).
@group(0) @binding(1) var<storage, read> params: array<f32>;
// Per run, one column per workgroup, `chunk.rows` values apart: the gradient of the SSE (P
// values), then the SSE. Value k of every workgroup is one run of the buffer, so the reduce
// pass reads it coalesced.
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;
@group(0) @binding(3) var<uniform> chunk: Chunk;

struct State {
    applied: u32,
    stop: u32,        // 0 running; once a run stopped (flat, diverged), its later steps skip
    stop_loss: f32,   // its share of the pass instead of reading every point for nothing
    stop_norm: f32,
}
// Every run's state, as the update pass keeps it.
@group(0) @binding(4) var<storage, read> states: array<State>;

// The runs this step trains: `ids[0..count]`, in slots of RB per workgroup row (wid.y).
struct Runs {
    count: u32,
    ids: array<u32>,
}
@group(0) @binding(5) var<storage, read> runs: Runs;

const WG: u32 = {{WG}}u;
const P: u32 = {{P}}u;
const PP: u32 = {{P}}u + 1u;
const NODES: u32 = {{NODES}}u;
// Runs stepped from each read of a point: every slot has its own weights and gradient sums.
const RB: u32 = {{RB}}u;
const NONE: u32 = 0xffffffffu;
const SUM_WG: u32 = WG;

var<workgroup> w: array<f32, {{RB_P}}>;
var<workgroup> slot_run: array<u32, RB>;
var<workgroup> live: u32;

{{WORKGROUP_SUM}}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    // Which run each slot steps: none past the list's end or once the run has stopped.
    if (lid.x == 0u) {
        var any = 0u;
        for (var i = 0u; i < RB; i++) {
            let at = wid.y * RB + i;
            var run = NONE;
            if (at < runs.count) {
                let r = runs.ids[at];
                if (states[r].stop == 0u) {
                    run = r;
                    any = 1u;
                }
            }
            slot_run[i] = run;
        }
        live = any;
    }
    if (workgroupUniformLoad(&live) == 0u) {
        return;
    }
    // The weights are read by every point: keep them in shared memory (and, for small
    // networks, in registers: downhill writes `let w_i_k = w[...];` lines below). A slot
    // without a run computes with zeros and writes nothing.
    for (var k = lid.x; k < RB * P; k += WG) {
        let run = slot_run[k / P];
        var value = 0.0;
        if (run != NONE) {
            value = params[run * P + k % P];
        }
        w[k] = value;
    }
    workgroupBarrier();
{{WEIGHTS}}
    var g: array<f32, {{RB_PP}}>;
    var act: array<f32, NODES>;
    var delta: array<f32, NODES>;
    let threads = groups.x * WG;
    // A grid-stride loop: threads past the last point do nothing (the bounds guard). Each
    // point is read once for all the slots' runs.
    for (var p = gid.x; p < chunk.points; p += threads) {
{{BODY}}
    }

    // Each slot's sums, value by value, written out with constant indices like the body: one
    // index computed at run time would make compilers keep the whole of `g` in memory.
{{SUMS}}
}

// Writes value k of slot i's workgroup sum into its run's partials.
fn write_sum(total: f32, i: u32, k: u32, lid: u32, row: u32) {
    let run = slot_run[i];
    if (lid == 0u && run != NONE) {
        partials[(run * PP + k) * chunk.rows + chunk.partial_row + row] = total;
    }
}
