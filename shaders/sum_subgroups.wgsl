// The workgroup's sum of every thread's `value`, in thread 0, with subgroup operations: each
// subgroup adds its values in one subgroupAdd, its first active thread writes that sum to the
// subgroup's slot (its subgroup_id), and thread 0 adds the slots in order. One barrier instead
// of log2(SUM_WG); correct at any subgroup size and however the adapter assigns threads to
// subgroups; the same order of additions on every run. `subgroup` is (subgroup_id,
// num_subgroups). Every thread of the workgroup must call it (it holds barriers). Included by
// downhill into the kernels, which declare SUM_WG (their workgroup size).
var<workgroup> subgroup_sums: array<f32, SUM_WG>;

fn workgroup_sum(value: f32, lid: u32, subgroup: vec2<u32>) -> f32 {
    let own = subgroupAdd(value);
    // The subgroup's first active thread writes (naga has no subgroupElect).
    if (subgroupBroadcastFirst(lid) == lid) {
        subgroup_sums[subgroup.x] = own;
    }
    workgroupBarrier();
    var total = 0.0;
    if (lid == 0u) {
        for (var k = 0u; k < subgroup.y; k++) {
            total += subgroup_sums[k];
        }
    }
    // The next call writes subgroup_sums again.
    workgroupBarrier();
    return total;
}
