// The layered kernels: one training step's gradient for networks too wide for the per-point
// kernel (fused_step.wgsl keeps every activation and a private copy of every gradient sum per
// thread). Here a batch of up to B points goes through the network a layer at a time, every
// layer's activations and errors in device buffers (one row of B values per node), and each
// weight's gradient is a sum over the batch computed by one thread of a tiled product.
//
// downhill writes one layer's constants into this text ({{...}} markers) and compiles the
// entry point it needs; the host records, per batch: load_inputs, forward (each layer),
// output_error, sum_squares, then backward and gradient from the last layer down.

struct Batch {
    start: u32,   // the batch's first point within the chunk
    count: u32,   // points in the batch (at most B)
    stride: u32,  // distance between the chunk's columns in `data`
    _pad: u32,
}

struct State {
    applied: u32,
    stop: u32,        // once a run stopped (flat, diverged), its later steps skip their work
    stop_loss: f32,
    stop_norm: f32,
}

// The chunk's columns one after another (inputs, then targets), `stride` values apart.
@group(0) @binding(0) var<storage, read> data: array<f32>;
// The network's parameters in downhill's flat layout.
@group(0) @binding(1) var<storage, read> params: array<f32>;
// Every node's activation over the batch: row n (inputs first) at n * B.
@group(0) @binding(2) var<storage, read_write> acts: array<f32>;
// Every node's error (the slope of the SSE by its pre-activation) over the batch, rows as in
// `acts`; row NODES holds each point's squared error.
@group(0) @binding(3) var<storage, read_write> deltas: array<f32>;
// The gradient of the SSE (P values), then the SSE: summed over every batch of the step.
@group(0) @binding(4) var<storage, read_write> totals: array<f32>;
@group(0) @binding(5) var<uniform> batch: Batch;
@group(0) @binding(6) var<storage, read> state: State;

const B: u32 = {{B}}u;             // points per batch: the length of a row
const P: u32 = {{P}}u;             // parameters
const NODES: u32 = {{NODES}}u;     // nodes, inputs included
const INPUTS: u32 = {{INPUTS}}u;
const OUTPUTS: u32 = {{OUTPUTS}}u;
// Activations: 0 identity, 1 ReLU, 2 tanh, 3 sigmoid.
const OUTPUT_ACT: u32 = {{OUTPUT_ACT}}u;
const OUTPUT_AT: u32 = {{OUTPUT_AT}}u;  // the outputs' first row

// The layer this text was written for.
const I: u32 = {{I}}u;             // its inputs
const J: u32 = {{J}}u;             // its nodes
const W: u32 = {{W}}u;             // its weights' offset (J x I, row-major)
const HAS_BIAS: bool = {{HAS_BIAS}};
const BIAS: u32 = {{BIAS}}u;       // its biases' offset (when it has them)
const ACT: u32 = {{ACT}}u;         // its activation
const IN_AT: u32 = {{IN_AT}}u;     // its inputs' first row
const OUT_AT: u32 = {{OUT_AT}}u;   // its nodes' first row
const INPUT_ACT: u32 = {{INPUT_ACT}}u;  // the activation its inputs came out of

// `act` of a pre-activation (tanh's argument clamped where f32's tanh is already +-1: some
// drivers compute it from exponentials that overflow).
fn activate(act: u32, z: vec4<f32>) -> vec4<f32> {
    switch act {
        case 1u: { return max(z, vec4<f32>(0.0)); }
        case 2u: { return tanh(clamp(z, vec4<f32>(-15.0), vec4<f32>(15.0))); }
        case 3u: { return 1.0 / (1.0 + exp(-z)); }
        default: { return z; }
    }
}

// `value` times the slope of `act` where its output is `a`.
fn times_slope(act: u32, value: f32, a: f32) -> f32 {
    switch act {
        case 1u: { return select(0.0, value, a > 0.0); }
        case 2u: { return value * (1.0 - a * a); }
        case 3u: { return value * a * (1.0 - a); }
        default: { return value; }
    }
}

const WG: u32 = 64u;
// Nodes per thread of forward and backward, and weights per thread (BLOCK x BLOCK) of the
// gradient: each value loaded then feeds BLOCK multiply-adds.
const BLOCK: u32 = 4u;
// The gradient's tiles: TILE x TILE threads, each with BLOCK x BLOCK weights, so SPAN x SPAN
// weights per workgroup; TILE_POINTS points at a time.
const TILE: u32 = 8u;
const SPAN: u32 = TILE * BLOCK;
const TILE_POINTS: u32 = 32u;
const SUM_WG: u32 = 256u;

var<workgroup> stopped: u32;
var<workgroup> delta_tile: array<array<f32, TILE_POINTS>, SPAN>;
var<workgroup> act_tile: array<array<f32, TILE_POINTS>, SPAN>;

{{WORKGROUP_SUM}}

// Thread (0, 0) reads whether the run has stopped; every thread of the workgroup sees it.
fn run_stopped(lid: vec3<u32>) -> bool {
    if (lid.x == 0u && lid.y == 0u) {
        stopped = state.stop;
    }
    return workgroupUniformLoad(&stopped) != 0u;
}

// The gradient sums start from zero at every step.
@compute @workgroup_size(SUM_WG)
fn zero_totals(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x <= P) {
        totals[gid.x] = 0.0;
    }
}

// The batch's inputs into the first rows of `acts`: thread (point, input).
@compute @workgroup_size(WG)
fn load_inputs(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let i = gid.y;
    if (q >= batch.count || state.stop != 0u) {
        return;
    }
    acts[i * B + q] = data[i * batch.stride + batch.start + q];
}

// The layer's activations: thread (point, 4 nodes), so that each input value read feeds 4
// multiply-adds. The 4 nodes are one vec4, not an array: software adapters keep small arrays
// indexed in loops in memory, and vectors in registers.
@compute @workgroup_size(WG)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let q = gid.x;
    // From the workgroup's id, not the thread's: visibly the same for the whole workgroup, so
    // the weights are read once for all its threads (on lavapipe too).
    let j0 = wid.y * BLOCK;
    if (q >= batch.count || state.stop != 0u) {
        return;
    }
    // Rows past the last node read clamped offsets and are never written.
    let r = vec4<u32>(min(j0, J - 1u), min(j0 + 1u, J - 1u), min(j0 + 2u, J - 1u), min(j0 + 3u, J - 1u));
    var z = vec4<f32>(0.0);
    if (HAS_BIAS) {
        z = vec4<f32>(params[BIAS + r.x], params[BIAS + r.y], params[BIAS + r.z], params[BIAS + r.w]);
    }
    let rows = W + r * I;
    for (var i = 0u; i < I; i++) {
        let a = acts[(IN_AT + i) * B + q];
        let w = vec4<f32>(params[rows.x + i], params[rows.y + i], params[rows.z + i], params[rows.w + i]);
        z = fma(w, vec4<f32>(a), z);
    }
    z = activate(ACT, z);
    acts[(OUT_AT + r.x) * B + q] = z.x;
    if (j0 + 1u < J) {
        acts[(OUT_AT + r.y) * B + q] = z.y;
    }
    if (j0 + 2u < J) {
        acts[(OUT_AT + r.z) * B + q] = z.z;
    }
    if (j0 + 3u < J) {
        acts[(OUT_AT + r.w) * B + q] = z.w;
    }
}

// Each point's error: the output nodes' deltas (2 e, through the ReLU's slope when the
// output layer has one) and the point's squared error.
@compute @workgroup_size(WG)
fn output_error(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    if (q >= batch.count || state.stop != 0u) {
        return;
    }
    var squares = 0.0;
    for (var k = 0u; k < OUTPUTS; k++) {
        let y = acts[(OUTPUT_AT + k) * B + q];
        let e = y - data[(INPUTS + k) * batch.stride + batch.start + q];
        squares += e * e;
        deltas[(OUTPUT_AT + k) * B + q] = times_slope(OUTPUT_ACT, 2.0 * e, y);
    }
    deltas[NODES * B + q] = squares;
}

// The batch's SSE added to the step's: one workgroup.
@compute @workgroup_size(SUM_WG)
fn sum_squares(
    @builtin(local_invocation_id) lid: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    if (run_stopped(lid)) {
        return;
    }
    var sum = 0.0;
    for (var q = lid.x; q < batch.count; q += SUM_WG) {
        sum += deltas[NODES * B + q];
    }
    let total = workgroup_sum(sum, lid.x, {{SUBGROUP_IDS}});
    if (lid.x == 0u) {
        totals[P] += total;
    }
}

// The errors passed back to the layer's inputs (through their ReLU's slope): thread (point,
// 4 inputs, one vec4).
@compute @workgroup_size(WG)
fn backward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let q = gid.x;
    let i0 = wid.y * BLOCK;  // the same for the whole workgroup (see `forward`)
    if (q >= batch.count || state.stop != 0u) {
        return;
    }
    // Columns past the last input read clamped offsets and are never written.
    let c = vec4<u32>(min(i0, I - 1u), min(i0 + 1u, I - 1u), min(i0 + 2u, I - 1u), min(i0 + 3u, I - 1u));
    var d = vec4<f32>(0.0);
    for (var j = 0u; j < J; j++) {
        let e = deltas[(OUT_AT + j) * B + q];
        let row = W + j * I;
        let w = vec4<f32>(params[row + c.x], params[row + c.y], params[row + c.z], params[row + c.w]);
        d = fma(w, vec4<f32>(e), d);
    }
    for (var b = 0u; b < BLOCK; b++) {
        let i = i0 + b;
        if (i < I) {
            let a = acts[(IN_AT + i) * B + q];
            deltas[(IN_AT + i) * B + q] = times_slope(INPUT_ACT, d[b], a);
        }
    }
}

// The layer's weight gradient, sum over the batch of (node error x input activation), and its
// bias gradient (input column I, a constant 1). A workgroup of TILE x TILE threads owns a tile
// of SPAN x SPAN weights, each thread a 4 x 4 block of them in four vec4 sums (registers, not
// an array: see `forward`); the errors and activations of TILE_POINTS points at a time are
// shared in workgroup memory, so each value loaded feeds 4 multiply-adds. Each thread adds its
// sums to `totals`.
@compute @workgroup_size(TILE, TILE)
fn gradient(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    if (run_stopped(lid)) {
        return;
    }
    let i0 = wid.x * SPAN;
    let j0 = wid.y * SPAN;
    let flat = lid.y * TILE + lid.x;
    let dy = lid.y * BLOCK;
    let ax = lid.x * BLOCK;
    var s0 = vec4<f32>(0.0);
    var s1 = vec4<f32>(0.0);
    var s2 = vec4<f32>(0.0);
    var s3 = vec4<f32>(0.0);
    for (var q0 = 0u; q0 < batch.count; q0 += TILE_POINTS) {
        // SPAN rows of TILE_POINTS values each, for the errors and the activations.
        for (var k = flat; k < SPAN * TILE_POINTS; k += TILE * TILE) {
            let r = k / TILE_POINTS;
            let f = k % TILE_POINTS;
            let q = q0 + f;
            let inside = q < batch.count;
            var d = 0.0;
            if (inside && j0 + r < J) {
                d = deltas[(OUT_AT + j0 + r) * B + q];
            }
            delta_tile[r][f] = d;
            var a = 0.0;
            if (inside && i0 + r < I) {
                a = acts[(IN_AT + i0 + r) * B + q];
            } else if (inside && i0 + r == I) {
                a = 1.0;
            }
            act_tile[r][f] = a;
        }
        workgroupBarrier();
        for (var f = 0u; f < TILE_POINTS; f++) {
            let a = vec4<f32>(act_tile[ax][f], act_tile[ax + 1u][f], act_tile[ax + 2u][f], act_tile[ax + 3u][f]);
            s0 = fma(vec4<f32>(delta_tile[dy][f]), a, s0);
            s1 = fma(vec4<f32>(delta_tile[dy + 1u][f]), a, s1);
            s2 = fma(vec4<f32>(delta_tile[dy + 2u][f]), a, s2);
            s3 = fma(vec4<f32>(delta_tile[dy + 3u][f]), a, s3);
        }
        workgroupBarrier();
    }
    add_row(j0 + dy, i0 + ax, s0);
    add_row(j0 + dy + 1u, i0 + ax, s1);
    add_row(j0 + dy + 2u, i0 + ax, s2);
    add_row(j0 + dy + 3u, i0 + ax, s3);
}

// Adds a thread's sums for weights (j, i..i + 4) to `totals` (column I: the bias).
fn add_row(j: u32, i: u32, sums: vec4<f32>) {
    if (j >= J) {
        return;
    }
    for (var x = 0u; x < BLOCK; x++) {
        if (i + x < I) {
            totals[W + j * I + i + x] += sums[x];
        } else if (i + x == I && HAS_BIAS) {
            totals[BIAS + j] += sums[x];
        }
    }
}
