// The descent step: the loss and gradient norm from the totals, the lesson's stopping rule,
// divergence detection, the history entry, and `w <- w - lr * gradient`. One workgroup; thread
// 0 decides, every thread updates a strided share of the weights.

struct Step {
    learning_rate: f32,
    scale: f32,       // turns the SSE into the chosen loss (1 / (points * outputs) for the MSE)
    tolerance: f32,   // stop once the gradient norm is below this
    limit: f32,       // a loss above this counts as divergence
}

struct State {
    applied: u32,     // updates made since the host last reset this
    stop: u32,        // 0 running, 1 flat, 2 diverged
    stop_loss: f32,
    stop_norm: f32,
}

// The gradient of the SSE (P values), then the SSE.
@group(0) @binding(0) var<storage, read> totals: array<f32>;
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
// The weights before the last update, restored when the loss diverges.
@group(0) @binding(2) var<storage, read_write> previous: array<f32>;
// Per update: the loss and the gradient norm before it.
@group(0) @binding(3) var<storage, read_write> history: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: State;
@group(0) @binding(5) var<uniform> step: Step;

const WG: u32 = {{WG}}u;
const P: u32 = {{P}}u;
const RUNNING: u32 = 0u;
const FLAT: u32 = 1u;
const DIVERGED: u32 = 2u;
const SKIP: u32 = 0u;
const UPDATE: u32 = 1u;
const RESTORE: u32 = 2u;

const SUM_WG: u32 = WG;

{{WORKGROUP_SUM}}
var<workgroup> action: u32;

fn is_finite(x: f32) -> bool {
    // WGSL has no isinf/isnan; an all-ones exponent is either.
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    var sum = 0.0;
    for (var k = lid.x; k < P; k += WG) {
        let g = totals[k] * step.scale;
        sum += g * g;
    }
    let squares = workgroup_sum(sum, lid.x, {{SUBGROUP_IDS}});

    if (lid.x == 0u) {
        let loss = totals[P] * step.scale;
        let norm = sqrt(squares);
        var decided = SKIP;
        if (state.stop == RUNNING) {
            if (!is_finite(loss) || !is_finite(norm) || loss > step.limit) {
                state.stop = DIVERGED;
                decided = RESTORE;
            } else if (norm < step.tolerance) {
                state.stop = FLAT;
            } else {
                history[2u * state.applied] = loss;
                history[2u * state.applied + 1u] = norm;
                state.applied += 1u;
                decided = UPDATE;
            }
            state.stop_loss = loss;
            state.stop_norm = norm;
        }
        action = decided;
    }
    let todo = workgroupUniformLoad(&action);
    if (todo == UPDATE) {
        for (var k = lid.x; k < P; k += WG) {
            previous[k] = params[k];
            params[k] = params[k] - step.learning_rate * step.scale * totals[k];
        }
    } else if (todo == RESTORE) {
        for (var k = lid.x; k < P; k += WG) {
            params[k] = previous[k];
        }
    }
}
