// RUN: xdsl-opt %s --split-input-file --verify-diagnostics | filecheck %s

// An all-to-all has a known phase, at least 2 sockets and an imbalance from 1 to its sockets.


rdu.kernel @k() attributes {pcus = 0 : i64, pmus = 0 : i64} {
  rdu.all_to_all {phase = "scatter", bytes = #cost.work<256*B>, sockets = 4 : i64, imbalance = 1.0 : f64}
  rdu.return
}
// CHECK: rdu.all_to_all: phase is 'scatter', not one of dispatch, combine

// -----

rdu.kernel @k() attributes {pcus = 0 : i64, pmus = 0 : i64} {
  rdu.all_to_all {phase = "dispatch", bytes = #cost.work<256*B>, sockets = 1 : i64, imbalance = 1.0 : f64}
  rdu.return
}
// CHECK: rdu.all_to_all: a collective needs at least 2 sockets

// -----

rdu.kernel @k() attributes {pcus = 0 : i64, pmus = 0 : i64} {
  rdu.all_to_all {phase = "combine", bytes = #cost.work<256*B>, sockets = 4 : i64, imbalance = 0.5 : f64}
  rdu.return
}
// CHECK: rdu.all_to_all: the imbalance (busiest socket over the mean) is from 1 to the socket count
