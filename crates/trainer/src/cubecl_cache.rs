//! CubeCL (burn-cuda) kernel cache: a persistent compilation and autotune cache in a stable
//! folder, so only a machine's first run pays for NVRTC. The folder is `$FACEGAN_KERNEL_CACHE`,
//! else `data/kernel-cache` under the current directory.

use std::path::PathBuf;

/// Where compiled kernels and autotune results are kept.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("FACEGAN_KERNEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data/kernel-cache"))
}

/// Turns the caches on before the first CUDA call (no-op without the `cuda` feature).
/// A `cubecl.toml` found in the current folder or above is respected; only cache locations it
/// leaves at their defaults are pointed at [`cache_dir`].
pub fn configure() {
    #[cfg(feature = "cuda")]
    {
        use cubecl_common::config::RuntimeConfig;
        use cubecl_runtime::config::cache::CacheConfig;
        use cubecl_runtime::config::CubeClRuntimeConfig;
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let dir = cache_dir();
            let dir = std::path::absolute(&dir).unwrap_or(dir);
            let mut cfg = CubeClRuntimeConfig::from_current_dir();
            if cfg.compilation.cache.is_none() {
                cfg.compilation.cache = Some(CacheConfig::File(dir.join("compilation")));
            }
            if matches!(cfg.autotune.cache, CacheConfig::Target) {
                cfg.autotune.cache = CacheConfig::File(dir.join("autotune"));
            }
            // Panics only if CubeCL was already configured, which `Once` and calling this
            // before any CUDA work rule out.
            let _ = std::panic::catch_unwind(|| CubeClRuntimeConfig::set(cfg.override_from_env()));
        });
    }
}
