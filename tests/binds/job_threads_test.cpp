// JobThreads: every job runs once, in order on one thread; a job stuck behind running ones gets a
// thread of its own within milliseconds; join() runs what was queued.
#include "binds/backend/blocking.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace binds::backend {
namespace {

using namespace std::chrono_literals;

TEST(JobThreads, OneThreadRunsJobsInOrder) {
  std::vector<int> order;
  {
    JobThreads t(1, 1);
    for (int i = 0; i < 100; ++i) t.post([&order, i] { order.push_back(i); });
  }  // the destructor runs what is queued
  ASSERT_EQ(order.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST(JobThreads, EveryJobPostedFromManyThreadsRunsOnce) {
  std::atomic<int> runs{0};
  {
    JobThreads t(8, 2);
    std::vector<std::thread> posters;
    for (int p = 0; p < 4; ++p)
      posters.emplace_back([&] {
        for (int i = 0; i < 5000; ++i) t.post([&runs] { runs.fetch_add(1); });
      });
    for (auto& p : posters) p.join();
    t.join();
    t.join();  // idempotent
  }
  EXPECT_EQ(runs.load(), 20000);
}

TEST(JobThreads, AJobBehindLongRunningOnesGetsAThreadOfItsOwn) {
  // One thread may run at a time before a stall, and a long job (a statement that scans for
  // seconds) holds it: a short job posted behind it must not wait for it.
  JobThreads t(3, 1);
  // Until every thread has gone to sleep once, a thread still starting would take the job anyway.
  for (int i = 0; i < 500 && t.sleeping() < 3; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(t.sleeping(), 3u);
  std::promise<void> release;
  auto released = release.get_future().share();
  std::atomic<int> long_started{0};
  t.post([&, released] {
    long_started++;
    released.wait_for(10s);
  });
  for (int i = 0; i < 500 && long_started.load() == 0; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(long_started.load(), 1);
  std::promise<std::thread::id> short_ran;
  auto done = short_ran.get_future();
  t.post([&] { short_ran.set_value(std::this_thread::get_id()); });
  const auto status = done.wait_for(2s);
  release.set_value();
  ASSERT_EQ(status, std::future_status::ready) << "a short job waited for a long one to finish";
  EXPECT_EQ(long_started.load(), 1);
  EXPECT_GE(t.stall_wakes(), 1u);
}

TEST(JobThreads, OneActiveThreadRunsShortJobsAlone) {
  // A post wakes no second thread while one runs, and a sleeping pool wakes the thread that went
  // idle last: short jobs all run on one thread. The monitor may still bring in another when the
  // running one is descheduled for a millisecond (a loaded machine), and counts each time it does.
  JobThreads t(8, 1);
  for (int i = 0; i < 500 && t.sleeping() < 8; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(t.sleeping(), 8u);
  std::mutex mu;
  std::set<std::thread::id> ran_on;
  std::atomic<int> runs{0};
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 20; ++i)
      t.post([&] {
        std::lock_guard lock(mu);
        ran_on.insert(std::this_thread::get_id());
        runs.fetch_add(1);
      });
    std::this_thread::sleep_for(1ms);
  }
  t.join();
  EXPECT_EQ(runs.load(), 1000);
  EXPECT_LE(ran_on.size(), 1 + t.stall_wakes()) << "a thread was woken beyond the one allowed to run";
}

TEST(JobThreads, ByDefaultAsManyRunAtOnceAsThereAreCpusTheIoThreadsLeave) {
  // bindsd reserves its I/O threads' CPUs: on a machine of N CPUs with N I/O threads, one statement
  // thread runs at a time (and more only through the monitor), where before every CPU had one.
  const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
  struct Restore {
    ~Restore() { reserve_cpus_for_io(0); }
  } restore;
  reserve_cpus_for_io(cpus);
  JobThreads t(8);
  for (int i = 0; i < 500 && t.sleeping() < 8; ++i) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(t.sleeping(), 8u);
  std::mutex mu;
  std::set<std::thread::id> ran_on;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 20; ++i)
      t.post([&] {
        std::lock_guard lock(mu);
        ran_on.insert(std::this_thread::get_id());
      });
    std::this_thread::sleep_for(1ms);
  }
  t.join();
  EXPECT_LE(ran_on.size(), 1 + t.stall_wakes()) << "more threads ran at once than the I/O threads leave CPUs for";
}

}  // namespace
}  // namespace binds::backend
