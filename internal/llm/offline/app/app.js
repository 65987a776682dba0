// app.js — wires the todo logic (todo.js) to the page. Storage is optional:
// a sandboxed preview has no localStorage, so every access is guarded.
(function () {
  'use strict';
  const T = window.Todo;
  const KEY = 'catalyst-todos';
  let filter = 'all';
  let todos = load();

  function load() {
    try {
      return T.parse(window.localStorage.getItem(KEY) || '[]');
    } catch (e) {
      return [];
    }
  }

  function save() {
    try {
      window.localStorage.setItem(KEY, JSON.stringify(todos));
    } catch (e) {
      /* no storage in a sandboxed preview: the list lives in memory */
    }
  }

  function update(next) {
    todos = next;
    save();
    render();
  }

  const form = document.getElementById('new-todo');
  const input = document.getElementById('title');
  const listEl = document.getElementById('list');
  const countEl = document.getElementById('count');

  form.addEventListener('submit', function (ev) {
    ev.preventDefault();
    update(T.addTodo(todos, input.value));
    input.value = '';
    input.focus();
  });

  document.getElementById('clear').addEventListener('click', function () {
    update(T.clearCompleted(todos));
  });

  document.querySelectorAll('[data-filter]').forEach(function (btn) {
    btn.addEventListener('click', function () {
      filter = btn.getAttribute('data-filter');
      render();
    });
  });

  function render() {
    listEl.textContent = '';
    T.filterTodos(todos, filter).forEach(function (todo) {
      const li = document.createElement('li');
      if (todo.done) li.className = 'done';
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = todo.done;
      box.setAttribute('aria-label', 'Done: ' + todo.title);
      box.addEventListener('change', function () {
        update(T.toggleTodo(todos, todo.id));
      });
      const span = document.createElement('span');
      span.textContent = todo.title;
      const del = document.createElement('button');
      del.textContent = '✕';
      del.setAttribute('aria-label', 'Delete ' + todo.title);
      del.addEventListener('click', function () {
        update(T.removeTodo(todos, todo.id));
      });
      li.append(box, span, del);
      listEl.appendChild(li);
    });
    const n = T.remaining(todos);
    countEl.textContent = n + (n === 1 ? ' item left' : ' items left');
    document.querySelectorAll('[data-filter]').forEach(function (btn) {
      btn.classList.toggle('active', btn.getAttribute('data-filter') === filter);
    });
  }

  render();
})();
