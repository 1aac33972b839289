-- bench/latency.py: each wrk connection waits 4 ms before each request (a paced load).
function delay()
   return 4
end
