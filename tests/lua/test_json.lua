-- engram.json: encoding rules (sorted keys, numbers, arrays vs objects, NaN),
-- strict decoding with positions, \u escapes, files and JSON Lines.
local lu = require("luaunit")
local json = require("engram.json")

local function decode_error(s)
  local ok, err = pcall(json.decode, s)
  lu.assertFalse(ok, "expected an error for " .. s)
  return tostring(err)
end

TestJson = {}

function TestJson.test_object_keys_are_sorted()
  lu.assertEquals(json.encode({ zeta = 1, alpha = 2, mid = { b = 1, a = 2 } }),
    '{"alpha":2,"mid":{"a":2,"b":1},"zeta":1}')
end

function TestJson.test_integers_stay_integers_and_floats_round_trip()
  lu.assertEquals(json.encode({ 1, -7, 3.0, 0.5 }), "[1,-7,3,0.5]")
  lu.assertEquals(json.encode(0.1), "0.1")
  for _, x in ipairs({ 0.1, 1 / 3, 2 / 3, 1e-300, 123456.789, -2.5e-8, 0.9292000000000001, math.pi, 1e300 }) do
    local back = json.decode(json.encode(x))
    lu.assertEquals(back, x)
    lu.assertEquals(math.type(back), "float")
  end
  lu.assertEquals(math.type(json.decode(json.encode(math.maxinteger))), "integer")
  lu.assertEquals(json.decode(json.encode(math.maxinteger)), math.maxinteger)
end

function TestJson.test_shortest_text_is_used()
  lu.assertEquals(json.encode(0.3), "0.3")
  lu.assertEquals(json.encode(0.1 + 0.2), "0.30000000000000004")
end

function TestJson.test_nan_and_infinity_become_null_or_error()
  lu.assertEquals(json.encode({ 0 / 0, math.huge, -math.huge }), "[null,null,null]")
  local ok, err = pcall(json.encode, { x = { math.huge } }, { nan = "error" })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "$.x[1]")
  lu.assertStrContains(err, "inf")
end

function TestJson.test_arrays_objects_and_empty_tables()
  lu.assertEquals(json.encode({}), "{}")
  lu.assertEquals(json.encode({}, { empty = "array" }), "[]")
  lu.assertEquals(json.encode(json.array()), "[]")
  lu.assertEquals(json.encode({ a = json.array(), b = json.object() }, { empty = "array" }), '{"a":[],"b":{}}')
  -- decoded empty containers keep their kind
  lu.assertEquals(json.encode(json.decode('{"a":[],"b":{}}')), '{"a":[],"b":{}}')
end

function TestJson.test_sparse_mixed_and_bad_keys_are_errors()
  local ok, err = pcall(json.encode, { [1] = 1, [3] = 3 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "sparse")
  ok, err = pcall(json.encode, { 1, 2, x = 3 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "mixes")
  ok, err = pcall(json.encode, { [1.5] = 1 })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "key")
  ok, err = pcall(json.encode, { f = print })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "$.f is a function")
  local t = {}
  t.self = t
  ok, err = pcall(json.encode, t)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cycle")
end

function TestJson.test_strings_are_escaped()
  lu.assertEquals(json.encode('a"b\\c\n\t\1'), '"a\\"b\\\\c\\n\\t\\u0001"')
  lu.assertEquals(json.encode("héllo"), '"héllo"')
  local s = 'tab\there "quoted" \\ back\r\n\0 nul é 😀'
  lu.assertEquals(json.decode(json.encode(s)), s)
end

function TestJson.test_pretty_output_indents_and_keeps_number_rows_on_one_line()
  local s = json.encode({ acc = { { 1, 0.5 }, { 0.25, 1 } }, name = "x" }, { pretty = true })
  lu.assertEquals(s, '{\n  "acc": [\n    [1, 0.5],\n    [0.25, 1]\n  ],\n  "name": "x"\n}')
  lu.assertStrContains(json.encode({ a = { b = 1 } }, { indent = 4 }), '\n        "b": 1')
end

function TestJson.test_unknown_encode_option_is_an_error()
  local ok, err = pcall(json.encode, {}, { sorted = true })
  lu.assertFalse(ok)
  lu.assertStrContains(err, "known: empty, indent, nan, pretty")
end

function TestJson.test_decode_values()
  local v = json.decode(' {"a": [1, 2.5, -3e2, true, false, null], "b": {"c": "d"}, "e": 0} ')
  lu.assertEquals(v.a[1], 1)
  lu.assertEquals(math.type(v.a[1]), "integer")
  lu.assertEquals(v.a[2], 2.5)
  lu.assertEquals(v.a[3], -300.0)
  lu.assertEquals(math.type(v.a[3]), "float")
  lu.assertTrue(v.a[4])
  lu.assertFalse(v.a[5])
  lu.assertIs(v.a[6], json.null)
  lu.assertEquals(#v.a, 6)
  lu.assertEquals(v.b.c, "d")
  lu.assertEquals(v.e, 0)
  lu.assertEquals(json.decode("null", { drop_null = true }), nil)
  lu.assertEquals(json.decode('{"x": null, "y": 1}', { drop_null = true }), { y = 1 })
end

function TestJson.test_unicode_escapes_and_surrogate_pairs()
  lu.assertEquals(json.decode('"\\u00e9\\u20ac"'), "é€")
  lu.assertEquals(json.decode('"\\ud83d\\ude00"'), "😀")
  lu.assertEquals(json.decode('"\\/\\b\\f"'), "/\b\f")
  lu.assertStrContains(decode_error('"\\ud83d"'), "low surrogate")
  lu.assertStrContains(decode_error('"\\ude00"'), "lone low surrogate")
  lu.assertStrContains(decode_error('"\\u12"'), "four hex digits")
  lu.assertStrContains(decode_error('"\\x"'), "bad escape")
end

function TestJson.test_malformed_input_reports_line_and_column()
  local err = decode_error('{\n  "a": 1,\n  "b" 2\n}')
  lu.assertStrContains(err, "expected ':'")
  lu.assertStrContains(err, "line 3 column 7")
  lu.assertStrContains(decode_error("[1, 2,]"), "unexpected character ']'")
  lu.assertStrContains(decode_error('{"a": 1,}'), "expected a string key")
  lu.assertStrContains(decode_error("[1 2]"), "expected ',' or ']'")
  lu.assertStrContains(decode_error('"abc'), "unterminated string")
  lu.assertStrContains(decode_error('"a\nb"'), "raw control character")
  lu.assertStrContains(decode_error("[1] x"), "unexpected text after the JSON value")
  lu.assertStrContains(decode_error(""), "unexpected end of input")
  lu.assertStrContains(decode_error("NaN"), "unexpected character 'N'")
  lu.assertStrContains(decode_error("tru"), "unexpected character 't'")
  lu.assertStrContains(decode_error("// c\n1"), "unexpected character '/'")
end

function TestJson.test_numbers_follow_the_json_grammar()
  for _, bad in ipairs({ "01", "1.", "1e", "-", "0x10", "1.5.2", "--1", "-01" }) do
    lu.assertStrContains(decode_error(bad), "malformed number", bad)
  end
  lu.assertStrContains(decode_error(".5"), "unexpected character '.'")
  lu.assertStrContains(decode_error("+1"), "unexpected character '+'")
  lu.assertEquals(json.decode("-0.5e-1"), -0.05)
  lu.assertEquals(json.decode("1E+2"), 100.0)
  lu.assertEquals(json.decode("99999999999999999999"), 1e20)
end

function TestJson.test_deep_nesting_is_an_error_not_a_crash()
  lu.assertStrContains(decode_error(("["):rep(10000)), "nesting deeper than 512")
  -- encoding too: it used to recurse until Lua's C stack overflowed
  local deep = {}
  local c = deep
  for _ = 1, 100000 do c[1] = {}; c = c[1] end
  lu.assertErrorMsgContains("json.encode: nesting deeper than 512 at $[1][1]", json.encode, deep)
  -- what one side writes the other reads: 512 levels both ways
  local ok = {}
  c = ok
  for _ = 1, 511 do c[1] = {}; c = c[1] end
  local text = json.encode(ok)
  lu.assertEquals(json.encode(json.decode(text)), text)
end

function TestJson.test_round_trip_of_a_nested_document()
  local doc = { name = "ewc", acc = { { 0.98, 0.1 }, { 0.9, 0.97 } }, ok = true, n = 3, s = { { name = "x" } } }
  lu.assertEquals(json.decode(json.encode(doc)), doc)
  lu.assertEquals(json.decode(json.encode(doc, { pretty = true })), doc)
end

function TestJson.test_write_and_read_file_atomically()
  local path = os.tmpname()
  json.write_file(path, { a = 1 })
  lu.assertEquals(json.read_file(path), { a = 1 })
  local f = assert(io.open(path, "w"))
  f:write("{bad")
  f:close()
  local ok, err = pcall(json.read_file, path)
  lu.assertFalse(ok)
  lu.assertStrContains(err, path .. ": json.decode: expected a string key")
  os.remove(path)
  ok, err = pcall(json.read_file, path)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "No such file")
  ok, err = pcall(json.write_file, "/nonexistent-dir/x.json", {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "cannot write /nonexistent-dir/x.json")
end

function TestJson.test_json_lines_writer_appends_one_value_per_line()
  local path = os.tmpname()
  local w = json.lines(path, { mode = "w" })
  w:write({ event = "start", task = 1 })
  w:write({ event = "epoch", loss = 0.25 })
  lu.assertEquals(w.count, 2)
  w:close()
  w:close() -- idempotent
  local ok, err = pcall(w.write, w, {})
  lu.assertFalse(ok)
  lu.assertStrContains(err, "closed")
  local w2 = json.lines(path)
  w2:write({ event = "end" })
  w2:close()
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  lu.assertEquals(text, '{"event":"start","task":1}\n{"event":"epoch","loss":0.25}\n{"event":"end"}\n')
  local events = json.read_lines(path)
  lu.assertEquals(#events, 3)
  lu.assertEquals(events[2].loss, 0.25)
  os.remove(path)
end
