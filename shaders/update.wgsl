// The descent step: the loss and gradient norm from the totals, the lesson's stopping rule,
// divergence detection, the history entry, and `w <- w - lr * gradient`. One workgroup per run
// (a sweep's runs each have their own rule, state and history); thread 0 decides, every thread
// updates a strided share of the run's weights.

struct Step {
    learning_rate: f32,
    scale: f32,       // turns the SSE into the chosen loss (1 / (points * outputs) for the MSE)
    tolerance: f32,   // stop once the gradient norm is below this
    limit: f32,       // a loss above this counts as divergence
    rule: u32,        // GD, MOMENTUM, NESTEROV or ADAM (src/optimizer.rs writes each out)
    updates: u32,     // updates the run made before this submission
    beta1: f32,       // the momentum, or Adam's beta1
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    schedule: u32,    // CONSTANT, STEP_DECAY, EXP_DECAY or COSINE
    every: u32,       // STEP_DECAY: updates between decays
    factor: f32,      // STEP_DECAY, EXP_DECAY: the factor per decay
    total: u32,       // COSINE: updates over which the rate falls to 0
}

struct State {
    applied: u32,     // updates made since the host last reset this
    stop: u32,        // 0 running, 1 flat, 2 diverged
    stop_loss: f32,
    stop_norm: f32,
}

// Per run (PP values apart): the gradient of the SSE (P values), then the SSE.
@group(0) @binding(0) var<storage, read> totals: array<f32>;
// Per run, P values apart.
@group(0) @binding(1) var<storage, read_write> params: array<f32>;
// The weights before the last update, restored when the loss diverges (P values per run).
@group(0) @binding(2) var<storage, read_write> previous: array<f32>;
// The update rule's state: per run (P values apart) the momentum buffer or Adam's first
// moment, then, in the buffer's second half, Adam's second moments. One binding for both: a
// kernel may have only 8 storage buffers on some adapters.
@group(0) @binding(7) var<storage, read_write> moments: array<f32>;
// Per run (2 * STEPS values apart), per update: the loss and the gradient norm before it.
@group(0) @binding(3) var<storage, read_write> history: array<f32>;
@group(0) @binding(4) var<storage, read_write> states: array<State>;
@group(0) @binding(5) var<storage, read> steps: array<Step>;

// The runs this step trains: workgroup wid.x updates run ids[wid.x].
struct Runs {
    count: u32,
    ids: array<u32>,
}
@group(0) @binding(6) var<storage, read> runs: Runs;

const WG: u32 = {{WG}}u;
const P: u32 = {{P}}u;
const PP: u32 = {{P}}u + 1u;
// Updates recorded per submission (each run's history holds this many).
const STEPS: u32 = {{STEPS}}u;
const RUNNING: u32 = 0u;
const FLAT: u32 = 1u;
const DIVERGED: u32 = 2u;
const CONSTANT: u32 = 0u;
const STEP_DECAY: u32 = 1u;
const EXP_DECAY: u32 = 2u;
const COSINE: u32 = 3u;
const PI: f32 = 3.14159265358979;
const GD: u32 = 0u;
const MOMENTUM: u32 = 1u;
const NESTEROV: u32 = 2u;
const ADAM: u32 = 3u;
const SKIP: u32 = 0u;
const UPDATE: u32 = 1u;
const RESTORE: u32 = 2u;

const SUM_WG: u32 = WG;

{{WORKGROUP_SUM}}
var<workgroup> action: u32;
// The number of the update being made (1 for a run's first).
var<workgroup> update_number: u32;

// The learning rate of update `n` (1 for the first), as src/optimizer.rs's `Schedule::rate`.
fn scheduled_rate(step: Step, n: u32) -> f32 {
    let done = n - 1u;
    switch step.schedule {
        case STEP_DECAY: { return step.learning_rate * pow(step.factor, f32(done / max(step.every, 1u))); }
        case EXP_DECAY: { return step.learning_rate * pow(step.factor, f32(done)); }
        case COSINE: {
            let phase = PI * f32(done) / f32(max(step.total, 1u));
            return step.learning_rate * 0.5 * (1.0 + cos(phase));
        }
        default: { return step.learning_rate; }
    }
}

fn is_finite(x: f32) -> bool {
    // WGSL has no isinf/isnan; an all-ones exponent is either.
    return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    if (wid.x >= runs.count) {
        return;
    }
    let run = runs.ids[wid.x];
    let step = steps[run];
    let w = run * P;
    let t = run * PP;
    var sum = 0.0;
    for (var k = lid.x; k < P; k += WG) {
        let g = totals[t + k] * step.scale;
        sum += g * g;
    }
    let squares = workgroup_sum(sum, lid.x, {{SUBGROUP_IDS}});

    if (lid.x == 0u) {
        let loss = totals[t + P] * step.scale;
        let norm = sqrt(squares);
        var decided = SKIP;
        let h = 2u * (run * STEPS + states[run].applied);
        if (states[run].stop == RUNNING) {
            if (!is_finite(loss) || !is_finite(norm) || loss > step.limit) {
                states[run].stop = DIVERGED;
                decided = RESTORE;
            } else if (norm < step.tolerance) {
                states[run].stop = FLAT;
            } else {
                history[h] = loss;
                history[h + 1u] = norm;
                states[run].applied += 1u;
                update_number = step.updates + states[run].applied;
                decided = UPDATE;
            }
            states[run].stop_loss = loss;
            states[run].stop_norm = norm;
        }
        action = decided;
    }
    let todo = workgroupUniformLoad(&action);
    if (todo == UPDATE) {
        let n = workgroupUniformLoad(&update_number);
        let lr = scheduled_rate(step, n);
        for (var k = lid.x; k < P; k += WG) {
            let p = params[w + k];
            previous[w + k] = p;
            if (step.rule == GD && step.weight_decay == 0.0) {
                // The lesson's step, written as it always was.
                params[w + k] = p - lr * step.scale * totals[t + k];
                continue;
            }
            var g = totals[t + k] * step.scale;
            if (step.weight_decay != 0.0) {
                g += step.weight_decay * p;
            }
            var by = g;
            let first = w + k;
            let second = arrayLength(&moments) / 2u + w + k;
            if (step.rule == MOMENTUM || step.rule == NESTEROV) {
                var b = g;
                if (n > 1u) {
                    b = step.beta1 * moments[first] + g;
                }
                moments[first] = b;
                by = select(b, g + step.beta1 * b, step.rule == NESTEROV);
            } else if (step.rule == ADAM) {
                let m = step.beta1 * moments[first] + (1.0 - step.beta1) * g;
                let v = step.beta2 * moments[second] + (1.0 - step.beta2) * g * g;
                moments[first] = m;
                moments[second] = v;
                let correction1 = 1.0 - pow(step.beta1, f32(n));
                let correction2 = 1.0 - pow(step.beta2, f32(n));
                by = m / correction1 / (sqrt(v) / sqrt(correction2) + step.eps);
            }
            params[w + k] = p - lr * by;
        }
    } else if (todo == RESTORE) {
        for (var k = lid.x; k < P; k += WG) {
            params[w + k] = previous[w + k];
        }
    }
}
