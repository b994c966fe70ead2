-- bench/heartbeat.lua: wrk script spreading heartbeats over many registered
-- nodes.  NODES_FILE (environment) lists "name<TAB>token" lines; each wrk
-- thread starts at its own offset and walks the list round-robin, sending
-- PUT /api/v1/workers/<name>/heartbeat with that node's token and a small
-- usage body, as the agent does.
local nodes = {}
local pos = 1

function setup(thread)
	thread:set("offset", math.random(1, 1000000))
end

function init(args)
	local path = os.getenv("NODES_FILE")
	for line in io.lines(path) do
		local name, token = line:match("^([^\t]+)\t([^\t]+)$")
		if name then
			nodes[#nodes + 1] = {"/api/v1/workers/" .. name .. "/heartbeat", "Bearer " .. token}
		end
	end
	pos = (tonumber(offset) or 1) % #nodes + 1
	wrk.method = "PUT"
	wrk.headers["Content-Type"] = "application/json"
	wrk.body = '{"isReady":true,"cpuUsage":"350m","memoryUsage":"2147483648","storageUsage":"21474836480","currentPods":3}'
end

function request()
	local n = nodes[pos]
	pos = pos % #nodes + 1
	wrk.headers["Authorization"] = n[2]
	return wrk.format(nil, n[1])
end

function done(summary, latency, requests)
	io.write(string.format("heartbeats|%.0f|%.2fms|%.2fms|%d\n",
		summary.requests / (summary.duration / 1e6),
		latency:percentile(50) / 1000, latency:percentile(99) / 1000,
		summary.errors.status))
end
