// Who the dashboard is signed in as, for pages that show what only some
// may do. null: not known (the server could not say); the server decides
// every request whatever the page shows.
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { User } from './api';

export const MeContext = createContext<User | null>(null);
export const useMe = () => useContext(MeContext);
