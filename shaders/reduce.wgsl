// Sums the per-workgroup partials of the fused pass into the gradient of the SSE and the SSE:
// one workgroup per value, each thread summing a strided share of the rows, then a tree in
// shared memory. Never one long serial sum.

struct Rows {
    count: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Rows of PP values: gradient entries, then the SSE.
@group(0) @binding(0) var<storage, read> partials: array<f32>;
// PP values: the summed gradient of the SSE, then the SSE.
@group(0) @binding(1) var<storage, read_write> totals: array<f32>;
@group(0) @binding(2) var<uniform> rows: Rows;

const WG: u32 = {{WG}}u;
const PP: u32 = {{P}}u + 1u;

var<workgroup> scratch: array<f32, WG>;

{{TREE_SUM}}

@compute @workgroup_size(WG)
fn main(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let k = wid.x;
    if (k >= PP) {
        return;
    }
    var sum = 0.0;
    for (var r = lid.x; r < rows.count; r += WG) {
        sum += partials[r * PP + k];
    }
    scratch[lid.x] = sum;
    tree_sum(lid.x);
    if (lid.x == 0u) {
        totals[k] = scratch[0];
    }
}
