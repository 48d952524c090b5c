// CloudFront Function (viewer request): collapse Accept into one of three values so that fm=auto
// variants do not explode the cache (Accept is part of the cache key through the cache policy).
function handler(event) {
    var request = event.request;
    var accept = request.headers['accept'] ? request.headers['accept'].value : '';
    var normalized = 'image/jpeg';
    if (accept.indexOf('image/avif') !== -1) {
        normalized = 'image/avif,image/webp';
    } else if (accept.indexOf('image/webp') !== -1) {
        normalized = 'image/webp';
    }
    request.headers['accept'] = { value: normalized };
    return request;
}
