#pragma once
// What the files implementing PgStore share (pg_store.cc, pg_result_queries.cc,
// pg_incident_queries.cc); not part of the storage interface.

#include <fmt/format.h>
#include <google/protobuf/timestamp.pb.h>

#include <chrono>
#include <string>

#include <pqxx/pqxx>

#include "storage/pg_store.h"

namespace vantage::storage {

using Micros = std::chrono::sys_time<std::chrono::microseconds>;

// Maps the exception being handled (a libpqxx one or any other) to the small
// taxonomy of StorageError, naming the operation and never the connection
// string. Call only inside a catch block.
[[noreturn]] void rethrow_as_storage_error(const char* what);

// A timestamptz literal PostgreSQL reads exactly (microseconds, UTC; no
// floating point on the way).
std::string timestamptz_text(Micros t);
std::string timestamptz_text(const google::protobuf::Timestamp& ts);

// A protobuf message stored as bytea.
template <typename Message>
Message parsed(const pqxx::field& field, const char* what) {
  Message m;
  const pqxx::binarystring bytes(field);
  if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    throw StorageError(StorageError::Kind::kInternal, fmt::format("a stored {} does not parse", what));
  }
  return m;
}

// Runs fn on a leased connection; any failure leaves as a StorageError, and a
// connection that broke is not given back to the pool.
template <typename Fn>
auto PgStore::with_connection(const char* what, Fn&& fn) {
  auto conn = pool_.lease();
  try {
    return fn(*conn);
  } catch (...) {
    if (!conn->is_open()) conn.discard();
    try {
      rethrow_as_storage_error(what);
    } catch (const StorageError& e) {
      if (e.kind() == StorageError::Kind::kUnavailable) conn.discard();
      throw;
    }
  }
}

}  // namespace vantage::storage
