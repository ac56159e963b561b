from console.launch import main

main()
