// mlm/threads.hpp — how many threads mlm's parallel loops and Eigen's products use.
//
// OpenMP is optional at build time: without it everything runs on one thread and these report 1.
// The setting is OpenMP's, which is per calling thread (a program that trains from another
// thread sets it there).
//
//   mlm::set_num_threads(2);            // our loops and Eigen's products
//   int n = mlm::max_threads();          // 2 (1 without OpenMP)
#pragma once

#include <Eigen/Core>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace mlm {

// Threads available to our own parallel loops (1 without OpenMP).
inline int max_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

inline int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// Sets the threads of our loops and of Eigen's products (OpenMP builds; a no-op otherwise).
inline void set_num_threads(int n) {
#ifdef _OPENMP
    if (n > 0) omp_set_num_threads(n);
#endif
    Eigen::setNbThreads(n > 0 ? n : 1);
}

}  // namespace mlm
