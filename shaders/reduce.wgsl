// Sums the per-workgroup partials of the fused pass into the gradient of the SSE and the SSE:
// one workgroup per value and run, each thread summing a strided share of the rows, then the
// workgroup's sum (sum_workgroup.wgsl or sum_subgroups.wgsl). Never one long serial sum.

struct Rows {
    count: u32,   // rows summed: every chunk's, or one mini-batch's
    first: u32,   // the first of them
    stride: u32,  // rows over all chunks (the distance between one value's rows)
    _pad: u32,
}

// Value k of run r's every row (workgroup of the fused pass) at (r * PP + k) * rows.stride + row.
@group(0) @binding(0) var<storage, read> partials: array<f32>;
// PP values per run: the summed gradient of the SSE, then the SSE.
@group(0) @binding(1) var<storage, read_write> totals: array<f32>;
@group(0) @binding(2) var<uniform> rows: Rows;

// The runs this step trains: workgroup row wid.y sums run ids[wid.y]. A run that stopped
// during the step's submission is summed all the same (its partials are stale), and the
// update pass skips it.
struct Runs {
    count: u32,
    ids: array<u32>,
}
@group(0) @binding(3) var<storage, read> runs: Runs;

const WG: u32 = {{WG}}u;
const PP: u32 = {{P}}u + 1u;
const SUM_WG: u32 = WG;

{{WORKGROUP_SUM}}

@compute @workgroup_size(WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    let k = wid.x;
    if (k >= PP || wid.y >= runs.count) {
        return;
    }
    let value = runs.ids[wid.y] * PP + k;
    // Consecutive threads read consecutive rows.
    var sum = 0.0;
    for (var r = lid.x; r < rows.count; r += WG) {
        sum += partials[value * rows.stride + rows.first + r];
    }
    let total = workgroup_sum(sum, lid.x, {{SUBGROUP_IDS}});
    if (lid.x == 0u) {
        totals[value] = total;
    }
}
