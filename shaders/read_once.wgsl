// Reads every value of a data chunk once and sums it: no arithmetic beyond the sums, so its
// time is the least any training step over the same data can take on this adapter (the
// yardstick `downhill bench` measures the GPU path against). Consecutive threads read
// consecutive values; each workgroup writes one partial sum so the reads cannot be skipped.

struct Count {
    values: u32,
    partial_row: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> data: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> count: Count;

const WG: u32 = {{WG}}u;
const SUM_WG: u32 = WG;

{{WORKGROUP_SUM}}

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    {{SUBGROUP_INPUTS}}
) {
    var sum = 0.0;
    for (var i = gid.x; i < count.values; i += groups.x * WG) {
        sum += data[i];
    }
    let total = workgroup_sum(sum, lid.x, {{SUBGROUP_IDS}});
    if (lid.x == 0u) {
        partials[count.partial_row + wid.x] = total;
    }
}
