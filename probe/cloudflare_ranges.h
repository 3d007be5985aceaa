#pragma once
// Cloudflare's published address ranges (data/cloudflare/), built into the
// binary so a probe needs no data files beside it.

namespace vantage::probe {

extern const char* const kCloudflareRangesV4;
extern const char* const kCloudflareRangesV6;

}  // namespace vantage::probe
