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
const OUTPUT_RELU: bool = {{OUTPUT_RELU}};
const OUTPUT_AT: u32 = {{OUTPUT_AT}}u;  // the outputs' first row

// The layer this text was written for.
const I: u32 = {{I}}u;             // its inputs
const J: u32 = {{J}}u;             // its nodes
const W: u32 = {{W}}u;             // its weights' offset (J x I, row-major)
const HAS_BIAS: bool = {{HAS_BIAS}};
const BIAS: u32 = {{BIAS}}u;       // its biases' offset (when it has them)
const RELU: bool = {{RELU}};       // its activation
const IN_AT: u32 = {{IN_AT}}u;     // its inputs' first row
const OUT_AT: u32 = {{OUT_AT}}u;   // its nodes' first row
const INPUT_RELU: bool = {{INPUT_RELU}};  // whether its inputs came out of a ReLU

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
var<workgroup> scratch: array<f32, SUM_WG>;

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

// The layer's activations: thread (point, BLOCK nodes), so that each input value read feeds
// BLOCK multiply-adds.
@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let j0 = gid.y * BLOCK;
    if (q >= batch.count || state.stop != 0u) {
        return;
    }
    var z: array<f32, BLOCK>;
    for (var b = 0u; b < BLOCK; b++) {
        if (HAS_BIAS && j0 + b < J) {
            z[b] = params[BIAS + j0 + b];
        }
    }
    for (var i = 0u; i < I; i++) {
        let a = acts[(IN_AT + i) * B + q];
        for (var b = 0u; b < BLOCK; b++) {
            // Rows past the last node read weights that are not this layer's; they are
            // never written.
            z[b] += params[min(W + (j0 + b) * I + i, P - 1u)] * a;
        }
    }
    for (var b = 0u; b < BLOCK; b++) {
        if (j0 + b < J) {
            var value = z[b];
            if (RELU) {
                value = max(value, 0.0);
            }
            acts[(OUT_AT + j0 + b) * B + q] = value;
        }
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
        var d = 2.0 * e;
        if (OUTPUT_RELU && y <= 0.0) {
            d = 0.0;
        }
        deltas[(OUTPUT_AT + k) * B + q] = d;
    }
    deltas[NODES * B + q] = squares;
}

// The batch's SSE added to the step's: one workgroup.
@compute @workgroup_size(SUM_WG)
fn sum_squares(@builtin(local_invocation_id) lid: vec3<u32>) {
    if (run_stopped(lid)) {
        return;
    }
    var sum = 0.0;
    for (var q = lid.x; q < batch.count; q += SUM_WG) {
        sum += deltas[NODES * B + q];
    }
    scratch[lid.x] = sum;
    workgroupBarrier();
    for (var width = SUM_WG / 2u; width > 0u; width /= 2u) {
        if (lid.x < width) {
            scratch[lid.x] += scratch[lid.x + width];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        totals[P] += scratch[0];
    }
}

// The errors passed back to the layer's inputs (through their ReLU's slope): thread (point,
// BLOCK inputs).
@compute @workgroup_size(WG)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x;
    let i0 = gid.y * BLOCK;
    if (q >= batch.count || state.stop != 0u) {
        return;
    }
    var d: array<f32, BLOCK>;
    for (var j = 0u; j < J; j++) {
        let e = deltas[(OUT_AT + j) * B + q];
        for (var b = 0u; b < BLOCK; b++) {
            d[b] += params[min(W + j * I + i0 + b, P - 1u)] * e;
        }
    }
    for (var b = 0u; b < BLOCK; b++) {
        let i = i0 + b;
        if (i < I) {
            var value = d[b];
            if (INPUT_RELU && acts[(IN_AT + i) * B + q] <= 0.0) {
                value = 0.0;
            }
            deltas[(IN_AT + i) * B + q] = value;
        }
    }
}

// The layer's weight gradient, sum over the batch of (node error x input activation), and its
// bias gradient (input column I, a constant 1). A workgroup of TILE x TILE threads owns a tile
// of (TILE * BLOCK)^2 weights, each thread a BLOCK x BLOCK block of them in registers; the
// errors and activations of TILE_POINTS points at a time are shared in workgroup memory, so
// each value loaded feeds BLOCK multiply-adds. Each thread adds its sums to `totals`.
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
    var sums: array<array<f32, BLOCK>, BLOCK>;
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
            var d: array<f32, BLOCK>;
            var a: array<f32, BLOCK>;
            for (var b = 0u; b < BLOCK; b++) {
                d[b] = delta_tile[lid.y * BLOCK + b][f];
                a[b] = act_tile[lid.x * BLOCK + b][f];
            }
            for (var y = 0u; y < BLOCK; y++) {
                for (var x = 0u; x < BLOCK; x++) {
                    sums[y][x] += d[y] * a[x];
                }
            }
        }
        workgroupBarrier();
    }
    for (var y = 0u; y < BLOCK; y++) {
        let j = j0 + lid.y * BLOCK + y;
        for (var x = 0u; x < BLOCK; x++) {
            let i = i0 + lid.x * BLOCK + x;
            if (j < J) {
                if (i < I) {
                    totals[W + j * I + i] += sums[y][x];
                } else if (i == I && HAS_BIAS) {
                    totals[BIAS + j] += sums[y][x];
                }
            }
        }
    }
}
