// todo.js — the pure logic of the todo list: no DOM, no storage, so that
// node --test can check it and the page can use the very same code.
(function (root) {
  'use strict';

  function normalise(title) {
    return String(title == null ? '' : title).replace(/\s+/g, ' ').trim();
  }

  // addTodo returns a new list with a todo titled `title` appended.
  // Blank titles are refused (the list is returned unchanged).
  function addTodo(list, title, id) {
    const t = normalise(title);
    if (t === '') return list;
    const nextId = id != null ? id : list.reduce((m, x) => Math.max(m, x.id), 0) + 1;
    return list.concat([{ id: nextId, title: t, done: false }]);
  }

  function toggleTodo(list, id) {
    return list.map((x) => (x.id === id ? Object.assign({}, x, { done: !x.done }) : x));
  }

  function renameTodo(list, id, title) {
    const t = normalise(title);
    if (t === '') return removeTodo(list, id);
    return list.map((x) => (x.id === id ? Object.assign({}, x, { title: t }) : x));
  }

  function removeTodo(list, id) {
    return list.filter((x) => x.id !== id);
  }

  function clearCompleted(list) {
    return list.filter((x) => !x.done);
  }

  function remaining(list) {
    return list.filter((x) => !x.done).length;
  }

  // filterTodos shows "all", "active" or "completed" todos.
  function filterTodos(list, filter) {
    if (filter === 'active') return list.filter((x) => !x.done);
    if (filter === 'completed') return list.filter((x) => x.done);
    return list.slice();
  }

  // parse restores a saved list, dropping anything malformed.
  function parse(text) {
    try {
      const v = JSON.parse(text);
      if (!Array.isArray(v)) return [];
      return v
        .filter((x) => x && typeof x.id === 'number' && typeof x.title === 'string')
        .map((x) => ({ id: x.id, title: normalise(x.title), done: Boolean(x.done) }))
        .filter((x) => x.title !== '');
    } catch (e) {
      return [];
    }
  }

  const api = { addTodo, toggleTodo, renameTodo, removeTodo, clearCompleted, remaining, filterTodos, parse };
  if (typeof module !== 'undefined' && module.exports) module.exports = api;
  else root.Todo = api;
})(typeof window !== 'undefined' ? window : globalThis);
