-- Conformance group 1 (Autobahn 1): spec/conformance/cases/framing.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.framing",
  { describe = describe, it = it, teardown = teardown })
