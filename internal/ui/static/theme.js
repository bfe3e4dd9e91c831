// Applies the theme the user chose (kept in localStorage) before the page
// is drawn; without a choice the browser's prefers-color-scheme decides.
(function () {
  'use strict';
  try {
    var t = localStorage.getItem('hershy-theme');
    if (t === 'dark' || t === 'light') {
      document.documentElement.setAttribute('data-theme', t);
    }
  } catch (e) { /* storage refused: follow the system */ }
})();
