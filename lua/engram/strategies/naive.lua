--- Naive fine-tuning: train on each task in turn with nothing against
-- forgetting (the lower bound). It has no hooks; using it names the run's
-- strategy in results.
return function(opts)
  require("engram.strategies").options("naive", opts, {}, 2)
  return { name = "naive", options = {}, stateless = true, midtask = true }
end
