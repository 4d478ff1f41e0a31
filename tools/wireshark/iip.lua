-- IIP/1 for Wireshark and tshark (4.x): frames over TCP, reassembled across
-- segments, several to a segment; chunked messages reassembled per channel
-- and direction; each answer paired with its request; framing and protocol
-- errors flagged with the id of the requirement they break.
--
--   tshark -X lua_script:tools/wireshark/iip.lua -r capture.pcap -Y iip
--   (or copy the file to ~/.local/lib/wireshark/plugins/)
--
-- Display-filter fields are listed in the book's "Debugging on the wire"
-- chapter; every one starts with "iip.".

local iip = Proto("iip", "IIP/1")

-- The status table of chapter 3: kind, sender, position.
local STATUS = {
    [0] = { "request", "client", "first-more" },
    [1] = { "request", "client", "whole" },
    [2] = { "request", "client", "continue-more" },
    [3] = { "request", "client", "last" },
    [4] = { "response", "server", "first-more" },
    [5] = { "response", "server", "whole" },
    [6] = { "response", "server", "continue-more" },
    [7] = { "response", "server", "last" },
    [8] = { "close", "either", "-" },
}
local STATUS_NAMES = {}
for value, row in pairs(STATUS) do
    STATUS_NAMES[value] = row[1] .. " " .. row[3]
end
STATUS_NAMES[8] = "close"

local f = iip.fields
f.status = ProtoField.uint8("iip.status", "Status", base.DEC, STATUS_NAMES)
f.kind = ProtoField.string("iip.kind", "Kind")
f.sender = ProtoField.string("iip.sender", "Sent by")
f.position = ProtoField.string("iip.position", "Position in its message")
f.path = ProtoField.string("iip.path", "Path")
f.path_bytes = ProtoField.bytes("iip.path.bytes", "Path bytes", base.NONE)
f.route = ProtoField.string("iip.route", "Route")
f.query = ProtoField.string("iip.query", "Query")
f.channel = ProtoField.uint32("iip.channel", "Channel")
f.len = ProtoField.uint32("iip.len", "Data length")
f.data = ProtoField.bytes("iip.data", "Data")
f.text = ProtoField.string("iip.text", "Data as text")
f.marker = ProtoField.uint8("iip.marker", "Body marker", base.HEX, { [0] = "as it is", [1] = "compressed" })
f.compressed = ProtoField.bool("iip.compressed", "Compressed body")
f.message = ProtoField.bytes("iip.message", "Message body")
f.message_len = ProtoField.uint32("iip.message.len", "Message body length")
f.message_frames = ProtoField.uint32("iip.message.frames", "Frames of the message")
f.request_in = ProtoField.framenum("iip.request_in", "Request in", base.NONE, frametype.REQUEST)
f.response_in = ProtoField.framenum("iip.response_in", "Response in", base.NONE, frametype.RESPONSE)
f.time = ProtoField.relative_time("iip.time", "Time since the request")
f.reason = ProtoField.string("iip.close.reason", "Close reason")
f.cites = ProtoField.string("iip.cites", "Requirement cited")
f.extensions = ProtoField.string("iip.hello.extensions", "Extensions")
f.granted = ProtoField.uint32("iip.granted", "Channel granted")
f.error = ProtoField.string("iip.error", "Error")

local e_framing = ProtoExpert.new("iip.framing_error", "IIP framing error", expert.group.MALFORMED, expert.severity.ERROR)
local e_protocol = ProtoExpert.new("iip.protocol_error", "IIP protocol error", expert.group.PROTOCOL, expert.severity.WARN)
local e_cites = ProtoExpert.new("iip.close_cites", "IIP close frame cites a requirement", expert.group.RESPONSE_CODE, expert.severity.NOTE)
iip.experts = { e_framing, e_protocol, e_cites }

iip.prefs.ports = Pref.range("TCP ports", "9090", "TCP ports decoded as IIP", 65535)
iip.prefs.heuristic = Pref.bool("Recognise IIP on any port", true, "Try IIP on TCP streams of other ports")
iip.prefs.max_path = Pref.uint("Longest path", 2048, "The path limit of LIMIT-1")
iip.prefs.max_data = Pref.uint("Largest frame data", 16777216, "The data limit of LIMIT-2")

local json = Dissector.get("json")

-- What the first pass learns, by conversation and by packet, so that later
-- passes (and the Wireshark GUI) show the same.
local conversations = {}
local results = {}

-- Whether `port` is in the ports preference ("9090,9100-9110").
local function configured(port)
    for part in tostring(iip.prefs.ports):gmatch("[^,%s]+") do
        local low, high = part:match("^(%d+)%-(%d+)$")
        low = tonumber(low or part)
        high = tonumber(high or part)
        if low ~= nil and high ~= nil and port >= low and port <= high then
            return true
        end
    end
    return false
end

local function endpoint(address, port)
    return tostring(address) .. ":" .. tostring(port)
end

local function conversation(pinfo, status)
    local a, b = endpoint(pinfo.src, pinfo.src_port), endpoint(pinfo.dst, pinfo.dst_port)
    local key = a < b and (a .. " " .. b) or (b .. " " .. a)
    local conv = conversations[key]
    if conv == nil then
        -- The server is the side on a configured port, else the side the
        -- first message frame's role says.
        local server
        if configured(pinfo.dst_port) then
            server = b
        elseif configured(pinfo.src_port) then
            server = a
        elseif status ~= nil and status >= 4 and status <= 7 then
            server = a
        else
            server = b
        end
        conv = {
            server = server,
            open = { [0] = true }, -- channels granted and not deleted
            deleting = {},
            highest = 0,
            waiting = {}, -- per channel: requests in line for an answer
            message = {}, -- per direction and channel: the message in progress
            broken = {}, -- per direction: the packet of its framing error
            compression = false,
        }
        conversations[key] = conv
    end
    local from_client = endpoint(pinfo.src, pinfo.src_port) ~= conv.server
    return conv, from_client
end

local function printable(bytes)
    for i = 0, bytes:len() - 1 do
        local b = bytes:get_index(i)
        if (b < 0x20 or b > 0x7e) and b ~= 0x0a and b ~= 0x0d and b ~= 0x09 then
            return false
        end
    end
    return true
end

-- The keys of the "extensions" object of a hello or its answer.
local function extension_names(text)
    local inner = text:match('"extensions"%s*:%s*(%b{})')
    if inner == nil then
        return ""
    end
    local names, depth, i = {}, 0, 1
    while i <= #inner do
        local c = inner:sub(i, i)
        if c == "{" then
            depth = depth + 1
        elseif c == "}" then
            depth = depth - 1
        elseif c == '"' then
            local close = inner:find('"', i + 1, true)
            if close == nil then
                break
            end
            local name = inner:sub(i + 1, close - 1)
            if depth == 1 and inner:sub(close + 1):match("^%s*:") then
                names[#names + 1] = name
            end
            i = close
        end
        i = i + 1
    end
    return table.concat(names, ",")
end

-- The protocol checks and the pairing, made once per frame on the first pass.
local function follow(conv, from_client, pinfo, status, route, channel, data)
    local r = { errors = {} }
    local kind, _, position = table.unpack(STATUS[status])
    local function err(text)
        r.errors[#r.errors + 1] = text
    end
    if kind == "close" then
        return r
    end
    if (kind == "request") ~= from_client then
        err("[STATUS-3] status " .. status .. " may not be sent by the " .. (from_client and "client" or "server"))
        return r
    end
    local dir = from_client and "c" or "s"
    conv.message[dir] = conv.message[dir] or {}
    if from_client then
        if not conv.open[channel] then
            if conv.deleting[channel] or (channel ~= 0 and channel <= conv.highest) then
                err("[CHAN-10] frame on channel " .. channel .. " after its /sys/delete_channel")
            else
                err("[CHAN-6] frame on channel " .. channel .. ", which does not exist")
            end
            return r
        end
    end
    local current = conv.message[dir][channel]
    local starts = position == "whole" or position == "first-more"
    if starts == (current ~= nil) then
        err("[MSG-6] status " .. status .. " on channel " .. channel .. " while its message state is " .. (current and "open" or "idle"))
        return r
    end
    if current == nil then
        current = { route = route, parts = {}, frames = 0, first = pinfo.number }
        conv.message[dir][channel] = current
    end
    current.parts[#current.parts + 1] = data
    current.frames = current.frames + 1
    local complete = position == "whole" or position == "last"
    if complete then
        conv.message[dir][channel] = nil
        r.message = table.concat(current.parts)
        r.frames = current.frames
    end
    conv.waiting[channel] = conv.waiting[channel] or {}
    local line = conv.waiting[channel]
    if from_client then
        if complete then
            local request = { frame = pinfo.number, time = pinfo.abs_ts, route = current.route }
            line[#line + 1] = request
            r.request = request
            if current.route == "/sys/delete_channel" and channel ~= 0 then
                conv.open[channel] = nil
                conv.deleting[channel] = true
            end
            if current.route == "/sys/hello" then
                r.extensions = extension_names(r.message)
            end
        end
        return r
    end
    local request = line[1]
    if request == nil then
        err("[ORDER-7] response on channel " .. channel .. " with no request outstanding")
        return r
    end
    r.request_in = request.frame
    local since = pinfo.abs_ts - request.time
    local seconds = math.floor(since)
    r.time = NSTime.new(seconds, math.floor((since - seconds) * 1e9))
    r.answers = request.route
    if complete then
        table.remove(line, 1)
        request.response = pinfo.number
        if request.route == "/sys/new_channel" then
            local granted = r.message:match('^%s*{%s*"code"%s*:%s*0%s*,%s*"channel_id"%s*:%s*(%d+)')
            if granted ~= nil then
                granted = tonumber(granted)
                conv.open[granted] = true
                conv.deleting[granted] = nil
                conv.highest = math.max(conv.highest, granted)
                r.granted = granted
            end
        elseif request.route == "/sys/delete_channel" and channel ~= 0 then
            conv.deleting[channel] = nil
        elseif request.route == "/sys/hello" then
            r.extensions = extension_names(r.message)
            -- From the next message on, bodies carry the marker (EXT-12).
            conv.compression = r.extensions:find("compression", 1, true) ~= nil
        end
    end
    return r
end

-- Decodes the frame at `offset`; returns the bytes it takes, 0 when more
-- bytes are needed (with how many, or -1 for one more segment), or nil
-- after a framing error.
local function frame(tvb, pinfo, tree, offset, index)
    local available = tvb:len() - offset
    local status = tvb(offset, 1):uint()
    local conv, from_client = conversation(pinfo, status)
    local dir = from_client and "c" or "s"
    local key = pinfo.number .. ":" .. index
    -- An error after which this direction is not read any further.
    local function stop(text, expert_field, length, note)
        local item = tree:add(iip, tvb(offset, length))
        if note ~= nil then
            item:append_text(note)
        end
        item:add(f.error, text):set_generated()
        item:add_proto_expert_info(expert_field, text)
        pinfo.cols.info:append(" " .. text)
        if not pinfo.visited then
            conv.broken[dir] = pinfo.number
        end
        return nil
    end
    local function framing(text, at, length)
        return stop(text, e_framing, math.min(available, at + length))
    end
    if status > 8 then
        return framing("[STATUS-2] unknown status byte " .. status, 0, 1)
    end
    -- A status of the other role is an error as soon as it arrives: a
    -- receiver closes there without waiting for the rest of its frame
    -- (STATUS-4), so an unfinished one ends the reading of its direction.
    local kind0 = STATUS[status][1]
    local wrong_role = kind0 ~= "close" and (kind0 == "request") ~= from_client
    local function more(needed)
        if wrong_role then
            local text = "[STATUS-3] status " .. status .. " may not be sent by the " .. (from_client and "client" or "server")
            return stop(text, e_protocol, available, ", the start of a frame of the other role")
        end
        return 0, needed
    end
    local limit = iip.prefs.max_path
    local window = math.min(available - 1, limit + 1)
    local nul
    for i = 1, window do
        if tvb(offset + i, 1):uint() == 0 then
            nul = i
            break
        end
    end
    if nul == nil then
        if window > limit then
            return framing("[LIMIT-1] path not terminated within " .. limit .. " bytes", 0, window + 1)
        end
        return more(-1)
    end
    local header = nul + 1 + 8
    if available < header then
        return more(header - available)
    end
    local channel = tvb(offset + nul + 1, 4):uint()
    local len = tvb(offset + nul + 5, 4):uint()
    if len > iip.prefs.max_data then
        return framing("[LIMIT-2] data length " .. len .. " exceeds the limit of " .. iip.prefs.max_data, nul + 5, 4)
    end
    if len == 0 and status ~= 8 then
        return framing("[FRAME-6] frame with status " .. status .. " declares zero bytes of data", nul + 5, 4)
    end
    if available < header + len then
        return more(header + len - available)
    end
    local path = tvb(offset + 1, nul - 1):string()
    local route, query = path:match("^([^?]*)%?(.*)$")
    route = route or path
    local data = tvb(offset + header, len)
    local kind, sender, position = table.unpack(STATUS[status])

    local r = results[key]
    if r == nil then
        r = follow(conv, from_client, pinfo, status, route, channel, len > 0 and data:raw() or "")
        results[key] = r
    end

    local item = tree:add(iip, tvb(offset, header + len))
    item:add(f.status, tvb(offset, 1))
    item:add(f.kind, kind):set_generated()
    item:add(f.sender, sender):set_generated()
    item:add(f.position, position):set_generated()
    item:add(f.path, tvb(offset + 1, nul - 1), path)
    item:add(f.path_bytes, tvb(offset + 1, nul - 1)):set_hidden()
    if query ~= nil then
        item:add(f.route, route):set_generated()
        item:add(f.query, query):set_generated()
    end
    item:add(f.channel, tvb(offset + nul + 1, 4))
    item:add(f.len, tvb(offset + nul + 5, 4))
    if len > 0 then
        item:add(f.data, data)
        if printable(data:bytes()) then
            item:add(f.text, data, data:string())
        end
    end
    local summary = STATUS_NAMES[status] .. " ch=" .. channel .. " " .. path .. " len=" .. len
    item:append_text(", " .. summary)
    pinfo.cols.info:append(" " .. summary)

    if kind == "close" then
        local reason = len > 0 and data:string() or ""
        item:add(f.reason, data, reason)
        local cited = reason:match("^%[([A-Z]+%-%d+)%]")
        if cited ~= nil then
            item:add(f.cites, cited):set_generated()
            item:add_proto_expert_info(e_cites, "close frame cites [" .. cited .. "]")
        end
    end
    for _, text in ipairs(r.errors) do
        item:add(f.error, text):set_generated()
        item:add_proto_expert_info(e_protocol, text)
    end
    if r.request_in ~= nil then
        item:add(f.request_in, r.request_in):set_generated()
        item:add(f.time, r.time):set_generated()
    end
    if r.request ~= nil and r.request.response ~= nil then
        item:add(f.response_in, r.request.response):set_generated()
    end
    if r.granted ~= nil then
        item:add(f.granted, r.granted):set_generated()
    end
    if r.extensions ~= nil then
        item:add(f.extensions, r.extensions):set_generated()
    end
    if r.message ~= nil and #r.message > 0 then
        local body = ByteArray.new(r.message, true)
        local message = body:tvb(r.frames > 1 and "Reassembled IIP message" or "IIP message")
        local m = item:add(f.message, message())
        m:add(f.message_len, #r.message):set_generated()
        m:add(f.message_frames, r.frames):set_generated()
        local at = 0
        -- The hello and its answer carry no marker (EXT-12).
        local marked = conv.compression and route ~= "/sys/hello" and (r.answers or route) ~= "/sys/hello"
        if marked and message:len() > 0 then
            m:add(f.marker, message(0, 1))
            m:add(f.compressed, message(0, 1):uint() == 1):set_generated()
            at = 1
        end
        local first = message:len() > at and message(at, 1):uint() or 0
        if json ~= nil and (first == 0x7b or first == 0x5b) and not (marked and at == 1 and message(0, 1):uint() == 1) then
            json:call(message(at):tvb(), pinfo, m)
        end
    end
    return header + len
end

function iip.dissector(tvb, pinfo, tree)
    local conv, from_client = conversation(pinfo, nil)
    local dir = from_client and "c" or "s"
    pinfo.cols.protocol = "IIP"
    local broken = conv.broken[dir]
    if broken ~= nil and pinfo.number > broken then
        tree:add(iip, tvb()):append_text(": bytes after a framing error, not read")
        pinfo.cols.info = "bytes after a framing error"
        return tvb:len()
    end
    pinfo.cols.info = ""
    local offset, index = 0, 0
    while offset < tvb:len() do
        local used, more = frame(tvb, pinfo, tree, offset, index)
        if used == nil then
            return tvb:len()
        end
        if used == 0 then
            pinfo.desegment_offset = offset
            pinfo.desegment_len = more == -1 and DESEGMENT_ONE_MORE_SEGMENT or more
            return tvb:len()
        end
        offset = offset + used
        index = index + 1
    end
    return offset
end

-- A TCP payload that starts as IIP: a status of the table, a printable path
-- (ending within the limit, or still arriving), and a length within the
-- limit that is not zero unless the frame closes.
local function heuristic(tvb, pinfo, tree)
    if not iip.prefs.heuristic or tvb:len() < 10 then
        return false
    end
    local status = tvb(0, 1):uint()
    if status > 8 then
        return false
    end
    local nul
    for i = 1, math.min(tvb:len() - 1, iip.prefs.max_path + 1) do
        local b = tvb(i, 1):uint()
        if b == 0 then
            nul = i
            break
        elseif b < 0x20 or b > 0x7e then
            return false
        end
    end
    if nul == nil then
        -- A long path still arriving: claimed if it looks like one.
        if tvb:len() <= iip.prefs.max_path then
            pinfo.conversation = iip
            iip.dissector(tvb, pinfo, tree)
            return true
        end
        return false
    end
    if tvb:len() < nul + 9 then
        return false
    end
    local len = tvb(nul + 5, 4):uint()
    if len > iip.prefs.max_data or (len == 0 and status ~= 8) then
        return false
    end
    pinfo.conversation = iip
    iip.dissector(tvb, pinfo, tree)
    return true
end

function iip.init()
    conversations = {}
    results = {}
end

function iip.prefs_changed()
    local tcp = DissectorTable.get("tcp.port")
    tcp:add(iip.prefs.ports, iip)
end

DissectorTable.get("tcp.port"):add(iip.prefs.ports, iip)
iip:register_heuristic("tcp", heuristic)
