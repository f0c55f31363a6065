// RUN: xdsl-opt %s | filecheck %s
// RUN: xdsl-opt %s --print-op-generic | xdsl-opt | filecheck %s

// A composition program: an HBM region of 3 slots of 1,000 bytes per socket, kept by LRU, and the
// copy that brings an expert of model @m (one of 150) from DDR into it on 8 sockets. Both ops
// print in their custom form and parse back from the generic one.

builtin.module {
  rdu.hbm_region @experts {slots = 3 : i64, slot_bytes = 1000 : i64, policy = "lru"}
  rdu.copy @m from "ddr" to "hbm" in @experts {bytes = 900 : i64, experts = 150 : i64, sockets = 8 : i64}
}

// CHECK:      rdu.hbm_region @experts {slots = 3 : i64, slot_bytes = 1000 : i64, policy = "lru"}
// CHECK-NEXT: rdu.copy @m from "ddr" to "hbm" in @experts {bytes = 900 : i64, experts = 150 : i64, sockets = 8 : i64}
