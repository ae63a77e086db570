// Sums `scratch[0..WG]` into `scratch[0]` by halving: log2(WG) rounds, each a barrier apart.
// Every thread of the workgroup must call it (it holds barriers); included by downhill into the
// kernels that declare `scratch` and `WG`.
fn tree_sum(lid: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] += scratch[lid + s];
        }
        workgroupBarrier();
    }
}
