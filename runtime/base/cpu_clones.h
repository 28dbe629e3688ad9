// ZR_CPU_CLONES: an AVX2 clone of a hot loop next to the default one (ifunc dispatch by CPU),
// except under ThreadSanitizer, whose runtime is not up yet when the loader runs ifunc resolvers
// (an instrumented resolver crashes the program before main).
#ifndef ZERORUN_RUNTIME_BASE_CPU_CLONES_H_
#define ZERORUN_RUNTIME_BASE_CPU_CLONES_H_

#if defined(__SANITIZE_THREAD__)
#define ZR_TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ZR_TSAN_BUILD 1
#endif
#endif

#ifdef ZR_TSAN_BUILD
#define ZR_CPU_CLONES
#else
#define ZR_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#endif

#endif  // ZERORUN_RUNTIME_BASE_CPU_CLONES_H_
