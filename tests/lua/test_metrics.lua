-- engram.metrics: every metric of ALGORITHMS.md on a 3x3 matrix worked out by
-- hand, undefined cases (nil and a reason), and bad input.
local lu = require("luaunit")
local metrics = require("engram.metrics")

-- R[i][j]: accuracy on task j after training task i.
local R = {
  { 0.90, 0.10, 0.20 },
  { 0.95, 0.80, 0.30 },
  { 0.50, 0.70, 0.90 },
}
local b = { 0.10, 0.20, 0.10 } -- untrained
local A = { 1.00, 0.80, 0.90 } -- each task trained alone

local EPS = 1e-12

TestMetrics = {}

function TestMetrics.test_average_accuracy_after_each_task_by_hand()
  local a = metrics.avg_acc_per_task(R)
  lu.assertEquals(#a, 3)
  lu.assertAlmostEquals(a[1], 0.90, EPS)
  lu.assertAlmostEquals(a[2], (0.95 + 0.80) / 2, EPS) -- 0.875
  lu.assertAlmostEquals(a[3], (0.50 + 0.70 + 0.90) / 3, EPS) -- 0.7
  lu.assertAlmostEquals(metrics.acc(R), 0.7, EPS)
end

function TestMetrics.test_bwt_by_hand()
  -- ((0.50 - 0.90) + (0.70 - 0.80)) / 2
  lu.assertAlmostEquals(metrics.bwt(R), -0.25, EPS)
end

function TestMetrics.test_fwt_by_hand()
  -- ((R[1][2] - b[2]) + (R[2][3] - b[3])) / 2 = ((0.1 - 0.2) + (0.3 - 0.1)) / 2
  lu.assertAlmostEquals(metrics.fwt(R, b), 0.05, EPS)
end

function TestMetrics.test_forgetting_uses_the_best_earlier_accuracy()
  -- task 1: max(0.90, 0.95) - 0.50 = 0.45 (not 0.40: the best was after task 2)
  -- task 2: max(0.10, 0.80) - 0.70 = 0.10
  local f = metrics.forgetting_per_task(R)
  lu.assertAlmostEquals(f[1], 0.45, EPS)
  lu.assertAlmostEquals(f[2], 0.10, EPS)
  lu.assertEquals(#f, 2)
  lu.assertAlmostEquals(metrics.forgetting(R), 0.275, EPS)
end

function TestMetrics.test_rkr_nar_and_cer_by_hand()
  lu.assertAlmostEquals(metrics.rkr(R), (0.50 / 0.90 + 0.70 / 0.80) / 2, EPS) -- 0.7152...
  lu.assertAlmostEquals(metrics.rkr(R), 0.71527777777778, 1e-12)
  lu.assertAlmostEquals(metrics.nar(R, A), (0.90 / 1.00 + 0.80 / 0.80 + 0.90 / 0.90) / 3, EPS)
  -- (0.7 - 0.4) / (20 / 10)
  lu.assertAlmostEquals(metrics.cer(0.7, 0.4, 20, 10), 0.15, EPS)
end

function TestMetrics.test_all_collects_every_metric()
  local m = metrics.all(R, { baseline = b, reference = A, naive_acc = 0.4, cost = 20, naive_cost = 10 })
  lu.assertAlmostEquals(m.acc, 0.7, EPS)
  lu.assertAlmostEquals(m.bwt, -0.25, EPS)
  lu.assertAlmostEquals(m.fwt, 0.05, EPS)
  lu.assertAlmostEquals(m.forgetting, 0.275, EPS)
  lu.assertAlmostEquals(m.cer, 0.15, EPS)
  lu.assertAlmostEquals(m.nar, 29 / 30, EPS)
  lu.assertEquals(next(m.undefined), nil)
end

function TestMetrics.test_one_task_leaves_transfer_metrics_undefined()
  local one = { { 0.8 } }
  lu.assertEquals(metrics.acc(one), 0.8)
  local v, why = metrics.bwt(one)
  lu.assertNil(v)
  lu.assertStrContains(why, "at least 2 tasks")
  lu.assertNil(metrics.fwt(one, { 0.1 }))
  lu.assertNil(metrics.forgetting(one))
  lu.assertNil(metrics.rkr(one))
  lu.assertAlmostEquals(metrics.nar(one, { 1.0 }), 0.8, EPS)
  local m = metrics.all(one)
  lu.assertNil(m.bwt)
  lu.assertStrContains(m.undefined.bwt, "2 tasks")
  lu.assertStrContains(m.undefined.nar, "reference")
  lu.assertStrContains(m.undefined.cer, "naive")
end

function TestMetrics.test_missing_references_and_zero_divisors_give_reasons()
  local v, why = metrics.fwt(R)
  lu.assertNil(v)
  lu.assertStrContains(why, "untrained")
  v, why = metrics.nar(R)
  lu.assertNil(v)
  lu.assertStrContains(why, "reference")
  v, why = metrics.nar(R, { 1, 0, 1 })
  lu.assertNil(v)
  lu.assertStrContains(why, "task 2")
  v, why = metrics.rkr({ { 0, 0 }, { 0.5, 0.5 } })
  lu.assertNil(v)
  lu.assertStrContains(why, "task 1")
  lu.assertNil(metrics.cer(0.7, nil, 1, 1))
  lu.assertNil(metrics.cer(0.7, 0.4, 20, nil))
  v, why = metrics.cer(0.7, 0.4, 20, 0)
  lu.assertNil(v)
  lu.assertStrContains(why, "positive")
end

function TestMetrics.test_bad_matrices_and_vectors_are_errors()
  local ok, err = pcall(metrics.bwt, { { 1, 2 }, { 1 } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "row 2")
  ok, err = pcall(metrics.acc, {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "non-empty")
  ok, err = pcall(metrics.acc, { { 0 / 0 } })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "R[1][1]")
  ok, err = pcall(metrics.fwt, R, { 0.1, 0.2 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "3 numbers")
  ok, err = pcall(metrics.all, R, { baseline_acc = b })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "known: baseline")
end

function TestMetrics.test_drift_is_mean_distance_over_mean_norm()
  -- samples then: (3,4) and (0,2) with norms 5 and 2 (mean 3.5);
  -- now: (3,4)+(3,4)=(6,8) (distance 5) and (0,2)+(0,2)=(0,4) (distance 2): mean 3.5
  local before = { { 3, 4 }, { 0, 2 } }
  local now = { { 6, 8 }, { 0, 4 } }
  lu.assertAlmostEquals(metrics.drift(now, before), 1.0, EPS)
  lu.assertAlmostEquals(metrics.drift{ distances = { 1, 3 }, norms = { 2, 2 } }, 1.0, EPS)
  lu.assertAlmostEquals(metrics.drift{ distances = { 7 }, norms = { 2 } }, 3.5, EPS)
  -- a custom distance (L1) and norm
  local d = metrics.drift({ { 1, 1 } }, { { 0, 0 } }, {
    dist = function(x, y) return math.abs(x[1] - y[1]) + math.abs(x[2] - y[2]) end,
    norm = function() return 4 end,
  })
  lu.assertAlmostEquals(d, 0.5, EPS)
  local v, why = metrics.drift({ { 1 } }, { { 0 } })
  lu.assertNil(v)
  lu.assertStrContains(why, "zero norm")
  local ok = pcall(metrics.drift, { { 1 } }, { { 0 }, { 1 } })
  lu.assertFalse(ok)
end
