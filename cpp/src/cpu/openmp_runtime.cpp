// SPDX-License-Identifier: BSD-3-Clause
#include "openmp_runtime.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cupatch/threads.h"

namespace cupatch {

namespace {
std::atomic<bool> g_in_child{false};

#if defined(__linux__)
std::atomic<const OpenMPRuntime*> g_runtime{nullptr};  // found once, kept (never unloaded)
std::mutex g_scan_mutex;
unsigned long long g_scanned_adds = ~0ull;  // dlpi_adds at the last scan that found nothing

bool enabled() {
    static const bool on = [] {
        const char* env = std::getenv("CUPATCH_OPENMP");
        return !(env && std::strcmp(env, "0") == 0);
    }();
    return on;
}

bool on_main_thread() {
    static thread_local const bool main = syscall(SYS_gettid) == getpid();
    return main;
}

bool is_openmp_library(const char* path) {
    const char* slash = std::strrchr(path, '/');
    const char* base = slash ? slash + 1 : path;
    for (const char* prefix : {"libgomp", "libomp", "libiomp5"})  // libgomp-<hash>.so.1 in wheels
        if (std::strncmp(base, prefix, std::strlen(prefix)) == 0) return true;
    return false;
}

int find_runtime(struct dl_phdr_info* info, size_t, void* out) {
    const char* path = info->dlpi_name;
    if (!path || !*path || !is_openmp_library(path)) return 0;
    void* handle = dlopen(path, RTLD_LAZY | RTLD_NOLOAD);  // only if loaded; kept open
    if (!handle) return 0;
    auto* rt = new OpenMPRuntime;
    rt->parallel = reinterpret_cast<decltype(rt->parallel)>(dlsym(handle, "GOMP_parallel"));
    rt->max_threads = reinterpret_cast<int (*)()>(dlsym(handle, "omp_get_max_threads"));
    rt->in_parallel = reinterpret_cast<int (*)()>(dlsym(handle, "omp_in_parallel"));
    rt->path = path;
    if (!rt->parallel || !rt->max_threads || !rt->in_parallel) {
        delete rt;
        return 0;
    }
    *static_cast<OpenMPRuntime**>(out) = rt;
    return 1;
}

int first_object_adds(struct dl_phdr_info* info, size_t, void* out) {
    *static_cast<unsigned long long*>(out) = info->dlpi_adds;  // objects loaded so far, ever
    return 1;
}

// The loaded runtime, looked for again only after new shared objects were loaded.
const OpenMPRuntime* loaded_runtime() {
    if (const OpenMPRuntime* rt = g_runtime.load(std::memory_order_acquire)) return rt;
    unsigned long long adds = 0;
    dl_iterate_phdr(first_object_adds, &adds);
    std::lock_guard<std::mutex> lock(g_scan_mutex);
    if (const OpenMPRuntime* rt = g_runtime.load(std::memory_order_acquire)) return rt;
    if (adds == g_scanned_adds) return nullptr;
    OpenMPRuntime* found = nullptr;
    dl_iterate_phdr(find_runtime, &found);
    g_scanned_adds = adds;
    g_runtime.store(found, std::memory_order_release);
    return found;
}
#endif
}  // namespace

OpenMPTeam openmp_team_for(int n_threads) {
#if defined(__linux__)
    if (g_in_child.load(std::memory_order_relaxed) || !enabled() || !on_main_thread()) return {};
    const OpenMPRuntime* rt = loaded_runtime();
    if (!rt || rt->in_parallel()) return {};
    const int team = rt->max_threads();
    if (n_threads <= team) return {rt, n_threads};
    if (cpu_threads_chosen()) return {};  // more than the team holds: the pool
    return {rt, team < 1 ? 1 : team};
#else
    (void)n_threads;
    return {};
#endif
}

std::string cpu_parallel_backend() {
    const OpenMPTeam team = openmp_team_for(cpu_threads());
    if (!team.runtime) return "pool";
    return "openmp " + team.runtime->path + ", " + std::to_string(team.threads) + (team.threads == 1 ? " thread" : " threads");
}

void forget_openmp_runtime_in_child() { g_in_child.store(true, std::memory_order_relaxed); }

}  // namespace cupatch
