// Period detection from the autocorrelation function, computed with a radix-2 FFT
// (Wiener–Khinchin: the autocorrelation is the inverse transform of the power spectrum).
#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>

#include "scheduler/predictor.h"

namespace fulcrum::scheduler {
namespace {

using Complex = std::complex<double>;

void Fft(std::vector<Complex>& a, bool inverse) {
  const size_t n = a.size();
  for (size_t i = 1, j = 0; i < n; ++i) {
    size_t bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) std::swap(a[i], a[j]);
  }
  for (size_t len = 2; len <= n; len <<= 1) {
    double angle = 2 * std::numbers::pi / static_cast<double>(len) * (inverse ? 1 : -1);
    Complex wlen(std::cos(angle), std::sin(angle));
    for (size_t i = 0; i < n; i += len) {
      Complex w(1);
      for (size_t j = 0; j < len / 2; ++j) {
        Complex u = a[i + j], v = a[i + j + len / 2] * w;
        a[i + j] = u + v;
        a[i + j + len / 2] = u - v;
        w *= wlen;
      }
    }
  }
  if (inverse) {
    for (auto& x : a) x /= static_cast<double>(n);
  }
}

// The series with NaNs replaced by the mean and a least-squares line removed.
std::vector<double> Detrended(const std::vector<double>& x) {
  double sum = 0;
  size_t count = 0;
  for (double v : x) {
    if (std::isfinite(v)) sum += v, ++count;
  }
  double mean = count ? sum / count : 0;
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = std::isfinite(x[i]) ? x[i] : mean;
  const double n = static_cast<double>(y.size());
  double mt = (n - 1) / 2, my = 0;
  for (double v : y) my += v;
  my /= n;
  double sty = 0, stt = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    double t = static_cast<double>(i) - mt;
    sty += t * (y[i] - my);
    stt += t * t;
  }
  double slope = stt > 0 ? sty / stt : 0;
  for (size_t i = 0; i < y.size(); ++i) y[i] -= my + slope * (static_cast<double>(i) - mt);
  return y;
}

// The Pearson correlation of the series with itself shifted by `lag`: exactly 1 at a pure
// signal's period, where the plain autocorrelation's edge terms move the peak by a few lags.
double LagCorrelation(const std::vector<double>& y, size_t lag) {
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
  const double n = static_cast<double>(y.size() - lag);
  for (size_t i = lag; i < y.size(); ++i) {
    double a = y[i], b = y[i - lag];
    sa += a, sb += b, saa += a * a, sbb += b * b, sab += a * b;
  }
  double va = saa - sa * sa / n, vb = sbb - sb * sb / n;
  if (va <= 0 || vb <= 0) return 0;
  return (sab - sa * sb / n) / std::sqrt(va * vb);
}

}  // namespace

int DetectPeriod(const std::vector<double>& samples, double min_correlation) {
  constexpr size_t kMaxCoarse = 4096;
  const size_t n = samples.size();
  if (n < 16) return 0;
  const size_t factor = (n + kMaxCoarse - 1) / kMaxCoarse;
  std::vector<double> coarse;
  coarse.reserve(n / factor + 1);
  for (size_t i = 0; i < n; i += factor) {
    double sum = 0;
    int count = 0;
    for (size_t j = i; j < std::min(n, i + factor); ++j) {
      if (std::isfinite(samples[j])) sum += samples[j], ++count;
    }
    coarse.push_back(count ? sum / count : std::nan(""));
  }
  std::vector<double> y = Detrended(coarse);
  const size_t m = y.size();
  size_t size = 1;
  while (size < 2 * m) size <<= 1;
  std::vector<Complex> a(size);
  for (size_t i = 0; i < m; ++i) a[i] = y[i];
  Fft(a, false);
  for (auto& c : a) c = std::norm(c);
  Fft(a, true);
  const double r0 = a[0].real();
  if (!(r0 > 1e-12 * static_cast<double>(m))) return 0;  // constant series
  std::vector<double> r(m / 2 + 2);
  for (size_t k = 0; k < r.size() && k < m; ++k) r[k] = a[k].real() / r0;

  // The highest local maximum of the ACF that rises clearly above the dip before it, so that the
  // slow decay of a smooth, aperiodic series is not read as a short period.
  size_t best = 0;
  double best_r = min_correlation;
  double dip = r[1];
  for (size_t k = 2; k + 1 < r.size() && k <= m / 2; ++k) {
    dip = std::min(dip, r[k]);
    if (r[k] >= r[k - 1] && r[k] >= r[k + 1] && r[k] - dip >= 0.1 && r[k] > best_r) {
      best = k;
      best_r = r[k];
    }
  }
  if (best == 0) return 0;

  std::vector<double> full = Detrended(samples);
  const size_t reach = 2 * factor + best * factor / 50;
  size_t lo = best * factor > reach ? best * factor - reach : 2;
  size_t hi = std::min(best * factor + reach, n / 2);
  size_t best_lag = best * factor;
  double best_full = -2;
  for (size_t lag = std::max<size_t>(lo, 2); lag <= hi; ++lag) {
    double c = LagCorrelation(full, lag);
    if (c > best_full) best_full = c, best_lag = lag;
  }
  return static_cast<int>(best_lag);
}

}  // namespace fulcrum::scheduler
