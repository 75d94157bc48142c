-- The app under test of the conformance suite: echoes every message with its
-- type, and offers two subprotocols (the server picks the first of the
-- client's offers that is listed here, in the client's order, or none).
return {
  path = "/",
  protocols = { "chat.v2", "chat.v1" },
  message = function(ws, data, binary)
    ws:send(data, binary)
  end,
}
