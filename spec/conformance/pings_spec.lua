-- Conformance group 2 (Autobahn 2): spec/conformance/cases/pings.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.pings",
  { describe = describe, it = it, teardown = teardown })
