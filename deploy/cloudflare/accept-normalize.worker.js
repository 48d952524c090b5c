// Cloudflare Worker in front of imgedge: put a normalised Accept class into the cache key, so that
// fm=auto works on plans where Cloudflare ignores `Vary: Accept` for images.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    const accept = request.headers.get('accept') || '';
    const fmt = accept.includes('image/avif') ? 'avif' : accept.includes('image/webp') ? 'webp' : 'jpeg';
    // An explicit fm is already a distinct URL; for fm=auto (or none), pin the negotiated format.
    const fm = url.searchParams.get('fm');
    if (!fm || fm === 'auto') {
      const headers = new Headers(request.headers);
      headers.set('accept', fmt === 'avif' ? 'image/avif,image/webp' : fmt === 'webp' ? 'image/webp' : 'image/jpeg');
      const cacheKey = new URL(url);
      cacheKey.searchParams.set('_accept', fmt);
      return fetch(new Request(url, { headers, method: request.method }), { cf: { cacheKey: cacheKey.toString(), cacheEverything: true } });
    }
    return fetch(request, { cf: { cacheEverything: true } });
  },
};
