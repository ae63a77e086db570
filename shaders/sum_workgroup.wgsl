// The workgroup's sum of every thread's `value`, in thread 0: a tree of halvings in workgroup
// memory, log2(SUM_WG) rounds a barrier apart. The way for adapters without subgroup
// operations (sum_subgroups.wgsl is the other); `subgroup` is unused here, so both have one
// signature. Every thread of the workgroup must call it (it holds barriers). Included by
// downhill into the kernels, which declare SUM_WG (their workgroup size, a power of two).
var<workgroup> sum_scratch: array<f32, SUM_WG>;

fn workgroup_sum(value: f32, lid: u32, subgroup: vec2<u32>) -> f32 {
    sum_scratch[lid] = value;
    workgroupBarrier();
    for (var s = SUM_WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            sum_scratch[lid] += sum_scratch[lid + s];
        }
        workgroupBarrier();
    }
    let total = sum_scratch[0];
    // The next call writes sum_scratch again.
    workgroupBarrier();
    return total;
}
