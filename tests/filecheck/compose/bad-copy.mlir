// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// A copy moves an expert between two tiers, into an HBM region that exists and has room for it;
// a region holds at least one expert under a known policy.

builtin.module {
  rdu.hbm_region @experts {slots = 3 : i64, slot_bytes = 1000 : i64, policy = "lru"}
  rdu.copy @m from "ddr" to "ddr" in @experts {bytes = 900 : i64, experts = 1 : i64, sockets = 8 : i64}
}
// CHECK: rdu.copy @m: copies from ddr to ddr; a copy moves between tiers

// -----

builtin.module {
  rdu.hbm_region @experts {slots = 3 : i64, slot_bytes = 1000 : i64, policy = "lru"}
  rdu.copy @m from "ddr" to "hbm" in @experts {bytes = 2000 : i64, experts = 1 : i64, sockets = 8 : i64}
}
// CHECK: rdu.copy @m: 2,000 bytes per socket do not fit in a slot of @experts (1,000 bytes)

// -----

builtin.module {
  rdu.copy @m from "ddr" to "hbm" in @nowhere {bytes = 900 : i64, experts = 1 : i64, sockets = 8 : i64}
}
// CHECK: rdu.copy @m: no rdu.hbm_region @nowhere

// -----

builtin.module {
  rdu.hbm_region @experts {slots = 0 : i64, slot_bytes = 1000 : i64, policy = "lru"}
}
// CHECK: rdu.hbm_region @experts: a region holds at least one expert (slots = 0)

// -----

builtin.module {
  rdu.hbm_region @experts {slots = 2 : i64, slot_bytes = 1000 : i64, policy = "fifo"}
}
// CHECK: rdu.hbm_region @experts: unknown policy 'fifo'; policies are lru
