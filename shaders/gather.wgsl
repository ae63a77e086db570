// Forms one mini-batch on the device: the batch's points, in its epoch's shuffled order, copied
// column by column from the training data (uploaded once) into the batch's own chunk, which
// the gradient pass then reads as it reads any chunk. One dispatch per batch and source chunk:
// each thread copies the batch's points that lie in that source chunk.

struct Gather {
    first: u32,          // where the batch's positions start in `order`
    points: u32,         // points in the batch (its columns are this far apart)
    source_start: u32,   // the source chunk's first point
    source_points: u32,  // points in the source chunk (its columns are this far apart)
}

// The source chunk's columns, one after another.
@group(0) @binding(0) var<storage, read> source: array<f32>;
// The epoch's order (uploaded once per epoch): position -> point.
@group(0) @binding(1) var<storage, read> order: array<u32>;
// The batch's columns, one after another.
@group(0) @binding(2) var<storage, read_write> batch: array<f32>;
@group(0) @binding(3) var<uniform> gather: Gather;

const WG: u32 = {{WG}}u;

@compute @workgroup_size(WG)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let columns = arrayLength(&batch) / gather.points;
    let threads = groups.x * WG;
    for (var i = gid.x; i < gather.points; i += threads) {
        let point = order[gather.first + i];
        // Unsigned: a point before the chunk wraps around to a large number.
        let k = point - gather.source_start;
        if (k < gather.source_points) {
            for (var c = 0u; c < columns; c++) {
                batch[c * gather.points + i] = source[c * gather.source_points + k];
            }
        }
    }
}
