-- Conformance group 4 (Autobahn 4): spec/conformance/cases/opcodes.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.opcodes",
  { describe = describe, it = it, teardown = teardown })
