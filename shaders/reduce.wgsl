// Sums the per-workgroup partials of the fused pass into the gradient of the SSE and the SSE:
// one workgroup per value, each thread summing a strided share of the rows, then the
// workgroup's sum (sum_workgroup.wgsl or sum_subgroups.wgsl). Never one long serial sum.

struct Rows {
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Value k of every row (workgroup of the fused pass) at k * rows.count + row.
@group(0) @binding(0) var<storage, read> partials: array<f32>;
// PP values: the summed gradient of the SSE, then the SSE.
@group(0) @binding(1) var<storage, read_write> totals: array<f32>;
@group(0) @binding(2) var<uniform> rows: Rows;

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
    if (k >= PP) {
        return;
    }
    // Consecutive threads read consecutive rows.
    var sum = 0.0;
    for (var r = lid.x; r < rows.count; r += WG) {
        sum += partials[k * rows.count + r];
    }
    let total = workgroup_sum(sum, lid.x, {{SUBGROUP_IDS}});
    if (lid.x == 0u) {
        totals[k] = total;
    }
}
