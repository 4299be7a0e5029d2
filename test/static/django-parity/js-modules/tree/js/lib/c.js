window.c = 3;
