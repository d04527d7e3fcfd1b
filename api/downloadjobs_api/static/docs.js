// Starts Swagger UI on /docs (loaded from /docs/assets) for the API's own document.
// A file rather than an inline script, so the page needs no CSP exemption.
window.addEventListener('load', () => {
  window.ui = window.SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
  });
});
