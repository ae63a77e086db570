// The GPU's arithmetic yardstick: independent chains of f32 multiply-adds on every thread, no
// memory traffic but one write per thread at the end (so the chains are not optimised away).
// The multiplier and addend are read from `values`, so the compiler cannot fold the chains.
// Each thread runs CHAINS chains of vec4 for ROUNDS rounds: ROUNDS * CHAINS * 4 * 2 flops.

@group(0) @binding(0) var<storage, read_write> values: array<f32>;

const WG: u32 = {{WG}}u;
const ROUNDS: u32 = {{ROUNDS}}u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = vec4<f32>(values[0]);
    let c = vec4<f32>(values[1]);
    let seed = f32(gid.x) * 1e-9;
    var a0 = vec4<f32>(seed, 1.0, 2.0, 3.0);
    var a1 = a0 + 1.0;
    var a2 = a0 + 2.0;
    var a3 = a0 + 3.0;
    var a4 = a0 + 4.0;
    var a5 = a0 + 5.0;
    var a6 = a0 + 6.0;
    var a7 = a0 + 7.0;
    for (var r = 0u; r < ROUNDS; r++) {
        a0 = fma(a0, m, c);
        a1 = fma(a1, m, c);
        a2 = fma(a2, m, c);
        a3 = fma(a3, m, c);
        a4 = fma(a4, m, c);
        a5 = fma(a5, m, c);
        a6 = fma(a6, m, c);
        a7 = fma(a7, m, c);
    }
    let total = (a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7);
    values[2u + gid.x] = dot(total, vec4<f32>(1.0));
}
