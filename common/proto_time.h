#pragma once
// google.protobuf.Timestamp <-> std::chrono::system_clock at microsecond
// precision: what PostgreSQL keeps, so a time read back from storage compares
// equal to the one that was written (the correlator's replay relies on it).

#include <google/protobuf/timestamp.pb.h>

#include <chrono>

namespace vantage {

inline google::protobuf::Timestamp to_timestamp(std::chrono::system_clock::time_point t) {
  // Floored, so that the nanos stay in [0, 1e9) before 1970 too.
  const auto us = std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch());
  const auto seconds = std::chrono::floor<std::chrono::seconds>(us);
  google::protobuf::Timestamp ts;
  ts.set_seconds(seconds.count());
  ts.set_nanos(static_cast<int32_t>(std::chrono::nanoseconds(us - seconds).count()));
  return ts;
}

inline std::chrono::system_clock::time_point from_timestamp(const google::protobuf::Timestamp& ts) {
  return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(ts.seconds()) + std::chrono::microseconds(ts.nanos() / 1000)));
}

}  // namespace vantage
