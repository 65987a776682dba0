'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const T = require('./todo.js');

test('adds a todo with a trimmed title and a fresh id', () => {
  let list = T.addTodo([], '  Buy   milk ');
  list = T.addTodo(list, 'Walk the dog');
  assert.deepEqual(list, [
    { id: 1, title: 'Buy milk', done: false },
    { id: 2, title: 'Walk the dog', done: false },
  ]);
});

test('refuses a blank title', () => {
  assert.deepEqual(T.addTodo([], '   '), []);
});

test('toggles, renames and removes without mutating the input', () => {
  const list = T.addTodo(T.addTodo([], 'a'), 'b');
  const toggled = T.toggleTodo(list, 1);
  assert.equal(list[0].done, false);
  assert.equal(toggled[0].done, true);
  assert.equal(T.renameTodo(toggled, 2, 'c')[1].title, 'c');
  assert.deepEqual(T.renameTodo(toggled, 2, ' ').map((x) => x.id), [1]);
  assert.deepEqual(T.removeTodo(toggled, 1).map((x) => x.id), [2]);
});

test('filters, counts and clears completed todos', () => {
  const list = T.toggleTodo(T.addTodo(T.addTodo(T.addTodo([], 'a'), 'b'), 'c'), 2);
  assert.equal(T.remaining(list), 2);
  assert.deepEqual(T.filterTodos(list, 'active').map((x) => x.title), ['a', 'c']);
  assert.deepEqual(T.filterTodos(list, 'completed').map((x) => x.title), ['b']);
  assert.equal(T.filterTodos(list, 'all').length, 3);
  assert.deepEqual(T.clearCompleted(list).map((x) => x.id), [1, 3]);
});

test('parses saved lists defensively', () => {
  assert.deepEqual(T.parse('not json'), []);
  assert.deepEqual(T.parse('{"a":1}'), []);
  assert.deepEqual(T.parse('[{"id":1,"title":"x","done":1},{"id":"2","title":"y"},{"id":3,"title":" "}]'), [
    { id: 1, title: 'x', done: true },
  ]);
});
