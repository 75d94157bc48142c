-- Conformance group H (opening handshake): spec/conformance/cases/handshake.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.handshake",
  { describe = describe, it = it, teardown = teardown })
