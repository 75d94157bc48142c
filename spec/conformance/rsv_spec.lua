-- Conformance group 3 (Autobahn 3): spec/conformance/cases/rsv.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.rsv",
  { describe = describe, it = it, teardown = teardown })
