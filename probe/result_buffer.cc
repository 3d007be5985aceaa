#include "probe/result_buffer.h"

#include "common/log.h"

namespace vantage::probe {

ResultBuffer::ResultBuffer(size_t max_results) : max_results_(max_results) {}

uint64_t ResultBuffer::append(v1::CheckResult result) {
  uint64_t sequence;
  {
    std::lock_guard lock(mu_);
    sequence = ++last_sequence_;
    result.set_sequence(sequence);
    pending_.push_back(std::move(result));
    if (pending_.size() > max_results_) {
      pending_.pop_front();
      if (unsent_index_ > 0) --unsent_index_;
      ++dropped_;
      // Logged every time on purpose: a drop is evidence lost.
      log::warn("result buffer full: dropped the oldest unacknowledged result",
                "limit", max_results_, "dropped_total", dropped_);
    }
  }
  cv_.notify_one();
  return sequence;
}

void ResultBuffer::continue_after(uint64_t sequence) {
  std::lock_guard lock(mu_);
  if (sequence > last_sequence_) last_sequence_ = sequence;
  if (sequence > acked_sequence_) acked_sequence_ = sequence;
}

void ResultBuffer::ack(uint64_t sequence) {
  std::lock_guard lock(mu_);
  if (sequence > acked_sequence_) acked_sequence_ = sequence;
  while (!pending_.empty() && pending_.front().sequence() <= sequence) {
    pending_.pop_front();
    if (unsent_index_ > 0) --unsent_index_;
  }
}

void ResultBuffer::rewind() {
  std::lock_guard lock(mu_);
  unsent_index_ = 0;
}

std::vector<v1::CheckResult> ResultBuffer::next_unsent(size_t max, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, wait, [&] { return closed_ || unsent_index_ < pending_.size(); });
  std::vector<v1::CheckResult> out;
  while (!closed_ && unsent_index_ < pending_.size() && out.size() < max) {
    out.push_back(pending_[unsent_index_++]);
  }
  return out;
}

void ResultBuffer::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

size_t ResultBuffer::size() const {
  std::lock_guard lock(mu_);
  return pending_.size();
}
uint64_t ResultBuffer::last_sequence() const {
  std::lock_guard lock(mu_);
  return last_sequence_;
}
uint64_t ResultBuffer::acked_sequence() const {
  std::lock_guard lock(mu_);
  return acked_sequence_;
}
uint64_t ResultBuffer::oldest_sequence() const {
  std::lock_guard lock(mu_);
  return pending_.empty() ? 0 : pending_.front().sequence();
}
uint64_t ResultBuffer::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace vantage::probe
