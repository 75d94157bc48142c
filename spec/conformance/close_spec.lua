-- Conformance group 7 (Autobahn 7): spec/conformance/cases/close.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.close",
  { describe = describe, it = it, teardown = teardown })
