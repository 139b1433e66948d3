#pragma once
// Runs a blocking function on another executor (a driver worker pool) and resumes the awaiting
// coroutine on its own executor. This is the only way driver calls are made from coroutines, so
// no blocking call ever runs on an Asio I/O thread.

#include <utility>
#include <boost/asio.hpp>
#include <exception>
#include <type_traits>

namespace binds {

template <typename Executor, typename F>
boost::asio::awaitable<std::invoke_result_t<F&>> offload(Executor worker, F f) {
  namespace asio = boost::asio;
  using R = std::invoke_result_t<F&>;
  // The worker gets its own copy of the callable (unwrapping std::ref): it must stay valid even if
  // the awaiting coroutine is destroyed while the worker runs.
  auto initiate = [worker, &f](auto handler) {
    asio::post(worker, [handler = std::move(handler), f = std::decay_t<std::unwrap_reference_t<F>>(f)]() mutable {
      std::exception_ptr ep;
      R r{};
      try {
        r = f();
      } catch (...) {
        ep = std::current_exception();
      }
      auto ex = asio::get_associated_executor(handler);
      // f goes along so that what it captured is released on the caller's executor, never on
      // the worker (dropping the last reference to a pool there would make it join itself).
      asio::dispatch(ex, [handler = std::move(handler), ep, r = std::move(r), f = std::move(f)]() mutable {
        handler(ep, std::move(r));
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::exception_ptr, R)>(
      std::move(initiate), asio::use_awaitable);
}

}  // namespace binds
