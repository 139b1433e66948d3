#include "binds/backend/pg_stream.hpp"

#include <algorithm>
#include <cstring>

#include "binds/socket_wakeups.hpp"

namespace binds::backend::pg {

// ---------------------------------------------------------------------------- Transport

tls_stream& Transport::start_tls(std::shared_ptr<asio::ssl::context> ctx) {
  tls_ctx_ = std::move(ctx);
  tls_ = std::make_unique<tls_stream>(std::move(*tcp_), *tls_ctx_);
  tcp_.reset();
  return *tls_;
}

asio::awaitable<std::size_t> Transport::read_some(asio::mutable_buffer b, error_code& ec) {
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  if (tls_) return tls_->async_read_some(b, token);
  if (unix_) return unix_->async_read_some(b, token);
  return tcp_->async_read_some(ShortReadBuffer(b, read_hints_), token);
}

asio::awaitable<std::size_t> Transport::write_all(asio::const_buffer b, error_code& ec) {
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  if (tls_) return asio::async_write(*tls_, b, token);
  if (unix_) return asio::async_write(*unix_, b, token);
  return asio::async_write(*tcp_, b, token);
}

namespace {
// Synchronous operations on a socket in non-blocking mode return would_block instead of waiting.
// Set on first use: the socket is only open once connected.
template <class Socket>
Socket& nonblocking(Socket& s, error_code& ec) {
  if (!s.non_blocking()) s.non_blocking(true, ec);
  return s;
}
}  // namespace

std::size_t Transport::write_now(asio::const_buffer b, error_code& ec) {
  if (tls_) {
    ec = asio::error::would_block;
    return 0;
  }
  return unix_ ? nonblocking(*unix_, ec).write_some(b, ec) : nonblocking(*tcp_, ec).write_some(b, ec);
}

std::size_t Transport::read_now(asio::mutable_buffer b, error_code& ec) {
  if (tls_) {
    ec = asio::error::would_block;
    return 0;
  }
  return unix_ ? nonblocking(*unix_, ec).read_some(b, ec) : nonblocking(*tcp_, ec).read_some(b, ec);
}

std::size_t Transport::read_available(asio::mutable_buffer b, error_code& ec) {
  if (!tls_) return read_now(b, ec);
  // With the socket non-blocking, the stream's synchronous read stops with would_block when the
  // kernel has nothing more; what it took so far stays in the stream's input buffer.
  nonblocking(tls_->next_layer(), ec);
  if (ec) return 0;
  return tls_->read_some(b, ec);
}


void Transport::close() {
  error_code ignored;
  if (tls_) tls_->lowest_layer().close(ignored);
  if (unix_) unix_->close(ignored);
  if (tcp_) tcp_->close(ignored);
}

bool Transport::is_open() const {
  if (tls_) return tls_->lowest_layer().is_open();
  if (unix_) return unix_->is_open();
  return tcp_ && tcp_->is_open();
}

int Transport::native_handle() {
  if (!is_open()) return -1;
  if (tls_) return tls_->lowest_layer().native_handle();
  if (unix_) return unix_->native_handle();
  return tcp_->native_handle();
}

asio::any_io_executor Transport::get_executor() {
  if (tls_) return tls_->lowest_layer().get_executor();
  if (unix_) return unix_->get_executor();
  return tcp_->get_executor();
}

// ---------------------------------------------------------------------------- Reader

Reader::Reader(std::size_t chunk) : chunk_(chunk) { reallocate(chunk_); }

void Reader::reallocate(std::size_t cap) {
  const std::size_t live = end_ - begin_;
  // Not zero-filled: a socket read is about to overwrite it.
  auto grown = std::make_unique_for_overwrite<char[]>(cap);
  if (live > 0) std::memcpy(grown.get(), buf_.get() + begin_, live);
  buf_ = std::move(grown);
  cap_ = cap;
  begin_ = 0;
  end_ = live;
}

Reader::Frame Reader::next(pgwire::Message& m, Header& partial) {
  partial = {};
  if (begin_ == end_) {
    begin_ = end_ = 0;  // nothing live: the next read starts at the front, nothing to move
    return Frame::partial;
  }
  const auto r = pgwire::read_message(pending(), pgwire::Phase::typed, pgwire::kDefaultMaxMessage, m);
  switch (r.status) {
    case pgwire::ReadStatus::message:
      begin_ += m.raw.size();
      return Frame::message;
    case pgwire::ReadStatus::need_more:
      if (r.needed > pgwire::header_size(pgwire::Phase::typed)) {
        partial.type = buf_[begin_];
        partial.total = r.needed;
      }
      return Frame::partial;
    case pgwire::ReadStatus::error:
      break;
  }
  return Frame::error;
}

void Reader::skip(std::size_t total) {
  const std::size_t now = std::min(total, end_ - begin_);
  begin_ += now;
  skip_left_ = total - now;
  if (begin_ == end_) begin_ = end_ = 0;
}

std::span<char> Reader::prepare(std::size_t hold) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (hold > cap_) {
    reallocate(hold);
  } else if (begin_ > 0 && (cap_ - end_ < chunk_ / 4 || begin_ + hold > cap_)) {
    // Slide the partial message down; it is small unless it is the one being held.
    const std::size_t live = end_ - begin_;
    std::memmove(buf_.get(), buf_.get() + begin_, live);
    begin_ = 0;
    end_ = live;
  }
  return {buf_.get() + end_, cap_ - end_};
}

void Reader::commit(std::size_t n) {
  end_ += std::min(n, cap_ - end_);
  if (skip_left_ > 0) {
    const std::size_t drop = std::min(skip_left_, end_ - begin_);
    begin_ += drop;
    skip_left_ -= drop;
    if (begin_ == end_) begin_ = end_ = 0;
  }
}

void Reader::shrink() {
  if (cap_ > chunk_ && end_ - begin_ <= chunk_) reallocate(chunk_);
}

// ---------------------------------------------------------------------------- Deadline

Deadline::Deadline(const asio::any_io_executor& ex, std::chrono::steady_clock::duration after,
                   std::function<void()> on_expire)
    : state_(std::make_shared<State>()), timer_(ex, after) {
  state_->on_expire = std::move(on_expire);
  timer_.async_wait([state = state_](const error_code& ec) {
    if (ec || !state->armed) return;
    state->expired = true;
    auto fire = std::move(state->on_expire);
    state->on_expire = nullptr;
    if (fire) fire();
  });
}

Deadline::~Deadline() {
  state_->armed = false;
  state_->on_expire = nullptr;
  timer_.cancel();
}

}  // namespace binds::backend::pg
