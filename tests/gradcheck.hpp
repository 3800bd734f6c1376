// Finite-difference gradient checking for the tests (double precision, central differences).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <vector>

#include <mlm/random.hpp>

namespace mlm::test {

struct GradCheckResult {
    double normalized_error = 0;  // ||g_fd - g|| / (||g_fd|| + ||g||) over the probed elements
    double max_abs_error = 0;
    double grad_norm = 0;         // ||g_fd|| over the probed elements
    int probed = 0;
};

// Probes up to max_probes elements of x (evenly spread, always including the first and last),
// comparing d f / d x[i] by central differences with the analytic gradient g[i].
inline GradCheckResult grad_check(const std::function<double()>& f, double* x, const double* g,
                                  std::size_t n, int max_probes = 64, double h = 1e-5) {
    GradCheckResult r;
    double diff2 = 0, fd2 = 0, an2 = 0;
    const std::size_t step = n <= static_cast<std::size_t>(max_probes) ? 1 : (n + max_probes - 1) / max_probes;
    for (std::size_t i = 0; i < n; i += step) {
        const std::size_t k = (i + step >= n) ? n - 1 : i;
        const double saved = x[k];
        x[k] = saved + h;
        const double fp = f();
        x[k] = saved - h;
        const double fm = f();
        x[k] = saved;
        const double fd = (fp - fm) / (2 * h);
        diff2 += (fd - g[k]) * (fd - g[k]);
        fd2 += fd * fd;
        an2 += g[k] * g[k];
        r.max_abs_error = std::max(r.max_abs_error, std::abs(fd - g[k]));
        ++r.probed;
        if (k == n - 1) break;
    }
    const double denom = std::sqrt(fd2) + std::sqrt(an2);
    r.normalized_error = denom > 0 ? std::sqrt(diff2) / denom : 0.0;
    r.grad_norm = std::sqrt(fd2);
    return r;
}

inline std::vector<double> random_vector(std::size_t n, uint64_t seed, double scale = 1.0) {
    Rng rng(seed);
    std::vector<double> v(n);
    for (auto& x : v) x = rng.normal() * scale;
    return v;
}

inline double dot(const std::vector<double>& a, const double* b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
    return s;
}

}  // namespace mlm::test
