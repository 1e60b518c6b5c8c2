// A small persistent thread pool: workers sleep on a condition variable between jobs, the
// calling thread takes part, chunks are handed out through an atomic counter. Or, once asked
// (use_openmp_runtime), the OpenMP runtime another library already loaded: PyTorch's libgomp,
// whose worker threads spin for a while after each of PyTorch's own operators. Next to them a
// second pool competes for the same cores (measured on 2 cores: a ResNet-50 with fastconv's
// convolutions ran 0.71x PyTorch's speed with the own pool, 0.96x with OMP_WAIT_POLICY=PASSIVE);
// handing fastconv's chunks to that same team lets the spinning threads do the work instead.
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/tuning.h"
#include "fastconv/parallel.h"

namespace fastconv {
namespace {

thread_local bool t_inside_task = false;

int default_num_threads() {
  if (const char* env = std::getenv("FASTCONV_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
#endif
  return std::max(1u, std::thread::hardware_concurrency());
}

// The CPUs this process may run on, in order (empty where that cannot be read).
std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
#ifdef __linux__
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) cpus.push_back(c);
#endif
  return cpus;
}

// Binds a running worker to `cpu` (Linux); false where that failed (the worker keeps its
// affinity).
bool move_worker(std::thread& worker, int cpu) {
#ifdef __linux__
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(worker.native_handle(), sizeof(set), &set) == 0;
#else
  (void)worker;
  (void)cpu;
  return false;
#endif
}

// Binds worker i of `workers` (its std::thread) to a CPU as FASTCONV_PIN_THREADS says
// (common/tuning.h): by default only where the pool spans exactly the allowed CPUs, worker i on
// the (i + 1)-th, so a woken worker never lands on the caller's CPU for the scheduler's sake.
// Done by the thread that makes the pool, before the pool is used: a worker binding itself
// might not have run yet when the first call returns.
// Returns that CPU, or -1 (the worker left unbound, also where binding failed).
int pin_worker(std::thread& worker, int i, int workers) {
  const int policy = tuning().pin_threads;
  if (policy == 0) return -1;
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) return -1;
  if (policy < 0 && int(cpus.size()) != workers + 1) return -1;
  const int cpu = cpus[size_t(i + 1) % cpus.size()];
  return move_worker(worker, cpu) ? cpu : -1;
}

class ThreadPool {
 public:
  explicit ThreadPool(int workers) {
    for (int i = 0; i < workers; ++i) {
      threads_.emplace_back([this] { worker_loop(); });
      cpu_of_.push_back(pin_worker(threads_.back(), i, workers));
    }
    // Every worker bound, one CPU each and one left over (FASTCONV_PIN_THREADS=auto's case):
    // that one is the caller's.
    const std::vector<int> cpus = allowed_cpus();
    if (workers > 0 && int(cpus.size()) == workers + 1 &&
        std::none_of(cpu_of_.begin(), cpu_of_.end(), [](int c) { return c < 0; })) {
      for (int c : cpus)
        if (std::find(cpu_of_.begin(), cpu_of_.end(), c) == cpu_of_.end()) free_cpu_ = c;
    }
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int size() const { return int(threads_.size()) + 1; }

  // Runs chunk(i) for i in [0, chunks) on all threads; returns when every chunk is done.
  // Workers join a job only while it is open; the caller closes it once every chunk has been
  // handed out and then waits just for the workers that joined. A worker that wakes late (a
  // sleeping vCPU can take hundreds of microseconds to come back) then costs the caller
  // nothing: it finds the job closed and goes back to sleep, instead of the caller waiting for
  // it to wake only to say it had nothing to do.
  void run(int64_t chunks, const std::function<void(int64_t)>& chunk) {
    follow_caller();
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &chunk;
      job_chunks_ = chunks;
      next_.store(0);
      joined_.store(0);
      open_ = true;
      error_ = nullptr;
      generation_.fetch_add(1);
    }
    wake_.notify_all();
    work();
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = false;  // every chunk is handed out: late workers must not join any more
    }
    // Joined workers usually finish within microseconds of the caller: spin, then sleep.
    spin_until([this] { return joined_.load(std::memory_order_acquire) == 0; });
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return joined_.load() == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    t_inside_task = true;
    for (int64_t i; (i = next_.fetch_add(1)) < job_chunks_;) {
      try {
        (*job_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
        next_.store(job_chunks_);  // stop handing out chunks
      }
    }
    t_inside_task = false;
  }

  // The caller's thread is not bound: the scheduler may run it on a worker's CPU (woken after a
  // sleep, it can land anywhere), and the two then share that CPU while another idles until the
  // kernel moves the caller, which it may not do for seconds (a running thread is cache-hot). On
  // the 2-vCPU Zen 4, in `fastconv bench`, whole rounds of fastconv's calls ran at one thread's
  // speed that way, 2-11 rows per reference-suite run, PyTorch's in the same rounds unmoved.
  // So before each job: where the caller is on a worker's CPU, that worker moves to the CPU the
  // caller left free (one affinity call, only when they meet).
  void follow_caller() {
#ifdef __linux__
    if (free_cpu_ < 0) return;
    const int here = sched_getcpu();
    if (here < 0 || here == free_cpu_) return;
    for (size_t i = 0; i < threads_.size(); ++i)
      if (cpu_of_[i] == here) {
        if (move_worker(threads_[i], free_cpu_)) cpu_of_[i] = free_cpu_, free_cpu_ = here;
        return;
      }
#endif
  }

  // Polls `ready` for up to FASTCONV_SPIN_US (common/tuning.h) before the caller falls back to
  // a condition variable: back-to-back kernel calls then skip the futex wake-up (and keep each
  // thread on its core), and idle workers still sleep.
  template <typename Ready>
  static bool spin_until(Ready&& ready) {
    static const auto kSpin = std::chrono::microseconds(tuning().spin_us);
    const auto until = std::chrono::steady_clock::now() + kSpin;
    do {
      for (int i = 0; i < 64; ++i) {
        if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
    } while (std::chrono::steady_clock::now() < until);
    return false;
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      {
        std::unique_lock<std::mutex> lock(mu_);
        wake_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
        if (stop_) return;
        seen = generation_.load();
        if (!open_) continue;  // woke after the caller closed the job: nothing left to do
        joined_.fetch_add(1, std::memory_order_acq_rel);
      }
      work();
      if (joined_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);
        done_.notify_one();
      }
    }
  }

  std::vector<std::thread> threads_;
  std::vector<int> cpu_of_;  // each worker's CPU, -1 where unbound
  int free_cpu_ = -1;        // the CPU no worker is bound to, where each has its own; else -1
  std::mutex mu_;
  std::condition_variable wake_, done_;
  bool stop_ = false;
  std::atomic<uint64_t> generation_{0};
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> joined_{0};  // workers inside the current job
  bool open_ = false;           // the current job still takes workers (guarded by mu_)
  std::exception_ptr error_;
};

// GOMP_parallel of an OpenMP runtime in the process (libgomp's ABI, which LLVM's and Intel's
// runtimes also export), or null: fastconv's own pool.
using GompParallel = void (*)(void (*)(void*), void*, unsigned, unsigned);
std::atomic<GompParallel> g_gomp_parallel{nullptr};
std::string g_openmp_library;  // guarded by g_pool_mu

// One parallel_for on the OpenMP team: the same dynamic chunk hand-out as the pool's.
struct OpenMpJob {
  const std::function<void(int64_t)>* chunk;
  int64_t chunks;
  std::atomic<int64_t> next{0};
  std::mutex mu;
  std::exception_ptr error;
};

void openmp_body(void* data) {
  auto* job = static_cast<OpenMpJob*>(data);
  const bool outer = t_inside_task;
  t_inside_task = true;
  for (int64_t i; (i = job->next.fetch_add(1)) < job->chunks;) {
    try {
      (*job->chunk)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(job->mu);
      if (!job->error) job->error = std::current_exception();
      job->next.store(job->chunks);
    }
  }
  t_inside_task = outer;
}

std::mutex g_pool_mu;            // held while a job runs; a second caller runs inline
std::atomic<int> g_num_threads{0};
ThreadPool* g_pool = nullptr;    // leaked on purpose after fork(): its threads do not exist

void after_fork_in_child() {
  g_pool = nullptr;  // the child has only the forking thread; rebuild lazily
  new (&g_pool_mu) std::mutex();
  // An OpenMP runtime's team does not survive fork() either (libgomp would wait for threads
  // the child does not have): the child goes back to fastconv's own pool.
  g_gomp_parallel.store(nullptr);
  g_openmp_library.clear();
}

int threads_setting() {
  int n = g_num_threads.load();
  if (n == 0) {
    static std::once_flag once;
    std::call_once(once, [] { pthread_atfork(nullptr, nullptr, after_fork_in_child); });
    int expected = 0;
    g_num_threads.compare_exchange_strong(expected, default_num_threads());
    n = g_num_threads.load();
  }
  return n;
}

}  // namespace

int get_num_threads() { return threads_setting(); }

void set_num_threads(int n) {
  threads_setting();
  std::lock_guard<std::mutex> lock(g_pool_mu);
  g_num_threads.store(std::max(1, n));
  if (g_pool && g_pool->size() != g_num_threads.load()) {
    delete g_pool;
    g_pool = nullptr;
  }
}

bool inside_parallel_for() { return t_inside_task; }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int threads = threads_setting();
  if (threads == 1 || n <= grain || t_inside_task) return fn(0, n);
  std::unique_lock<std::mutex> lock(g_pool_mu, std::try_to_lock);
  if (!lock.owns_lock()) return fn(0, n);  // another thread is using the pool
  // set_num_threads may have run since the read above (it takes g_pool_mu): read the setting
  // again under the lock, so the pool made below has that size (it used to keep the stale one
  // until the next set_num_threads).
  threads = g_num_threads.load();
  if (threads == 1) return fn(0, n);
  if (g_pool && g_pool->size() != threads) {
    delete g_pool;
    g_pool = nullptr;
  }
  // A few chunks per thread balance uneven work without much hand-out overhead.
  const int64_t max_chunks = std::max<int64_t>(1, n / grain);
  const int64_t chunks = std::min<int64_t>(max_chunks, int64_t(threads) * 4);
  const int64_t base = n / chunks, extra = n % chunks;
  const std::function<void(int64_t)> chunk = [&](int64_t i) {
    const int64_t begin = i * base + std::min(i, extra);
    fn(begin, begin + base + (i < extra ? 1 : 0));
  };
  if (GompParallel gomp = g_gomp_parallel.load()) {
    OpenMpJob job;
    job.chunk = &chunk;
    job.chunks = chunks;
    gomp(&openmp_body, &job, static_cast<unsigned>(threads), 0);
    if (job.error) std::rethrow_exception(job.error);
    return;
  }
  if (!g_pool) g_pool = new ThreadPool(threads - 1);
  g_pool->run(chunks, chunk);
}

std::string use_openmp_runtime(const std::string& library) {
  threads_setting();  // registers the fork handler that undoes this in a child
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (library.empty()) {
    g_gomp_parallel.store(nullptr);
    g_openmp_library.clear();
    return "";
  }
  // RTLD_NOLOAD: only a runtime that is already there (a second copy would be a second team).
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) return std::string("not loaded in this process: ") + library;
  void* symbol = dlsym(handle, "GOMP_parallel");
  if (!symbol) return library + " has no GOMP_parallel";
  g_gomp_parallel.store(reinterpret_cast<GompParallel>(symbol));
  g_openmp_library = library;
  if (g_pool) {  // its threads are not needed any more
    delete g_pool;
    g_pool = nullptr;
  }
  return "";
}

std::string openmp_runtime() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  return g_openmp_library;
}

void parallel_for_2d(int64_t n0, int64_t n1, const std::function<void(int64_t, int64_t)>& fn) {
  if (n0 <= 0 || n1 <= 0) return;
  parallel_for(n0 * n1, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) fn(t / n1, t % n1);
  });
}

}  // namespace fastconv
