-- Conformance group 12 (Autobahn 12/13, permessage-deflate): spec/conformance/cases/deflate.lua.
require("spec.conformance.engine").group(require "spec.conformance.cases.deflate",
  { describe = describe, it = it, teardown = teardown })
