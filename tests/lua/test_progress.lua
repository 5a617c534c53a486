-- engram.progress: live \r lines on a terminal (rate-limited), one plain line
-- per epoch otherwise, nothing when quiet; ETA and rate from an injected clock.
local lu = require("luaunit")
local progress = require("engram.progress")

local helpers = require("helpers")
local sink = helpers.sink

-- A clock the test moves by hand.
local function fake_clock()
  local c = { t = 0 }
  c.fn = function() return c.t end
  return c
end

TestProgress = {}

function TestProgress.test_tty_rewrites_the_line_at_most_ten_times_a_second()
  local out, clock = sink(), fake_clock()
  local p = progress.new{ out = out, tty = true, clock = clock.fn }
  for k = 1, 100 do
    clock.t = k * 0.01 -- 100 updates over one second
    p:update{ task = 1, tasks = 5, epoch = 1, epochs = 2, done = k * 10, total = 2000, loss = 0.5 }
  end
  local draws = select(2, out.text:gsub("\r", ""))
  lu.assertTrue(draws >= 9 and draws <= 11, "draws: " .. draws)
  lu.assertNil(out.text:find("\n", 1, true))
  p:finish()
  lu.assertEquals(out.text:sub(-1), "\n")
  lu.assertStrContains(out.text, "task 1/5  epoch 1/2")
end

function TestProgress.test_line_has_rate_loss_and_eta()
  local clock = fake_clock()
  local p = progress.new{ out = sink(), tty = true, clock = clock.fn }
  p:update{ task = 2, tasks = 5, epoch = 1, epochs = 1, done = 0, total = 1000, loss = 1 }
  clock.t = 2
  p:update{ task = 2, tasks = 5, epoch = 1, epochs = 1, done = 500, total = 1000, loss = 0.25, acc = 0.9 }
  local line = p:line()
  lu.assertStrContains(line, "task 2/5")
  lu.assertStrContains(line, " 50%")
  lu.assertStrContains(line, "loss 0.2500")
  lu.assertStrContains(line, "acc 90.0%")
  lu.assertStrContains(line, "250 samples/s") -- 500 samples in 2 s
  lu.assertStrContains(line, "ETA 2s") -- 500 left at 250/s
  p:update{ task = 2, tasks = 5, epoch = 1, epochs = 1, done = 500, total = 1000, samples_per_s = 5 }
  lu.assertStrContains(p:line(), "ETA 1m40s")
end

function TestProgress.test_plain_mode_prints_one_line_per_epoch()
  local out = sink()
  local p = progress.new{ out = out, tty = false, clock = fake_clock().fn }
  for k = 1, 50 do p:update{ task = 1, tasks = 2, epoch = 1, epochs = 1, done = k, total = 50, loss = 0.1 } end
  lu.assertEquals(out.text, "")
  p:finish("task 1 epoch 1: acc 98.0%")
  lu.assertEquals(out.text, "task 1 epoch 1: acc 98.0%\n")
end

function TestProgress.test_quiet_prints_nothing()
  local out = sink()
  local p = progress.new{ out = out, quiet = true, tty = true }
  p:update{ task = 1, tasks = 1, done = 1, total = 2 }
  p:finish("done")
  p:message("hello")
  lu.assertEquals(out.text, "")
end

function TestProgress.test_message_does_not_break_the_live_line()
  local out, clock = sink(), fake_clock()
  local p = progress.new{ out = out, tty = true, clock = clock.fn }
  p:update{ task = 1, tasks = 1, done = 1, total = 2 }
  p:message("checkpoint saved")
  lu.assertStrContains(out.text, "\r\27[Kcheckpoint saved\n")
end

function TestProgress.test_unknown_option_and_durations()
  local ok, err = pcall(progress.new, { silent = true })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "known: clock, out, quiet, rate, tty, width")
  lu.assertEquals(progress.duration(59.4), "59s")
  lu.assertEquals(progress.duration(3725), "1h02m")
  lu.assertEquals(progress.duration(0 / 0), "?")
end

function TestProgress.test_rate_counts_from_the_start_of_each_epoch_with_a_reused_state()
  local clock = fake_clock()
  local p = progress.new{ out = sink(), tty = true, clock = clock.fn }
  local st = { task = 1, tasks = 1, epoch = 1, epochs = 2, done = 0, total = 2000 }
  p:update(st)
  clock.t = 4
  st.done = 1000
  p:update(st)
  lu.assertStrContains(p:line(), "250 samples/s")
  st.epoch = 2 -- the same table, a new epoch: the rate restarts from done = 1000
  p:update(st)
  clock.t = 5
  st.done = 1500
  p:update(st)
  lu.assertStrContains(p:line(), "500 samples/s")
  lu.assertStrContains(p:line(), "ETA 1s")
end
